"""The one error type the library raises for problems a user can act on, and how
text from a stranger's file is shown without letting it drive the terminal."""

import re

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: escape sequences, bells, line moves


class DinogenError(Exception):
    """A problem with the user's data, options or files, stated in one sentence.

    The CLI prints the message as it is and exits with status 1, so the message
    says what is wrong, with what, and what to do about it.
    """


class SettingsConflict(DinogenError):
    """A setting out of its range, settings that cannot go together (TrainConfig.check), or
    flags that contradict the run being resumed: the CLI's usage error (exit 2), as a bad flag is."""


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """"1 name", "2 names", "1,424 names": a count and its noun, agreeing."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def shown(text: str) -> str:
    """text with every control character written out (ESC as \\x1b), for a terminal."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
