"""Standard error carries diagnostics only, so what cannot be written there never stops the work.

Progress, warnings, summaries and error sentences go to stderr. When stderr was
closed at start (`2>&-`), is a pipe whose reader has gone (`2>&1 >/dev/null | true`)
or a full disk, those lines are lost, but the command goes on: its results still
reach stdout, its checkpoint is still written, and its exit code still says how it
went. Without this, the first line that failed would end the command (Python turns
a closed pipe into BrokenPipeError, which the CLI takes for a closed stdout), and
Click would write its error sentences to stdout when stderr is closed.
"""

from __future__ import annotations

import io
import os
import sys


class Diagnostics(io.TextIOBase):
    """A text stream over stderr (or over nothing) that stops writing at its first failure."""

    def __init__(self, stream) -> None:
        self.stream = stream  # the real stderr; None when it was closed at start
        self.lost = stream is None  # True once a write has failed: nothing more is tried

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self.stream.write(text)
            except OSError:  # the reader gone, a full disk, an I/O error
                self.give_up()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except OSError:
                self.give_up()

    def give_up(self) -> None:
        """Write nothing more, and point the descriptor at /dev/null, so that what the
        stream still buffers (and the interpreter flushes at exit) fails no more."""
        self.lost = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # a stream without a descriptor (a test's capture): nothing to point
            pass

    def isatty(self) -> bool:
        return not self.lost and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise io.UnsupportedOperation("standard error is closed")
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self.stream, "errors", None) or "backslashreplace"


def guard_stderr() -> None:
    """Put sys.stderr behind a Diagnostics stream (once)."""
    if not isinstance(sys.stderr, Diagnostics):
        sys.stderr = Diagnostics(sys.stderr)
