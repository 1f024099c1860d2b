"""Reading a file the user named, with a one-sentence error for each way it fails."""

from __future__ import annotations

import os
from pathlib import Path

from dinogen.errors import DinogenError

ZIP_MAGIC = b"PK\x03\x04"  # how every zip archive, so every .npz checkpoint, begins


def read_bytes(path: Path, what: str, hint: str, magic: bytes = b"", not_magic: str = "") -> bytes:
    """The whole file; DinogenError("<what> <path> ...; <hint>.") when it cannot be read.

    what names the file for the user ("checkpoint", "names file"); hint says what to do.
    A device (/dev/zero) is refused unread. With magic, a file or pipe that does not
    start with those bytes is refused with the sentence not_magic after only its first
    bytes are read, so `<(yes)` ends at once while `<(cat model.npz)` is read whole.
    """
    try:
        if path.is_dir():
            raise DinogenError(f"{what} {path} is a folder, not a file; {hint}.")
        if path.is_char_device() or path.is_block_device():
            raise DinogenError(f"{what} {path} is a device, not a file; {hint}.")
        with path.open("rb") as file:
            head = file.read(len(magic))
            if head != magic:
                raise DinogenError(not_magic)
            return head + file.read()
    except FileNotFoundError:
        if path.is_symlink():
            raise DinogenError(f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                               f"{hint}.") from None
        raise DinogenError(f"{what} {path} does not exist; {hint}.") from None
    except PermissionError:
        raise DinogenError(f"{what} {path} cannot be read (permission denied); check its permissions.") from None
    except OSError as exc:
        raise DinogenError(f"{what} {path} cannot be read ({exc.strerror}); {hint}.") from None
