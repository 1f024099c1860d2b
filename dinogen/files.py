"""Reading a file the user named, with a one-sentence error for each way it fails."""

from __future__ import annotations

from pathlib import Path

from dinogen.errors import DinogenError

ZIP_MAGIC = b"PK\x03\x04"  # how every zip archive, so every .npz checkpoint, begins


def read_bytes(path: Path, what: str, hint: str) -> bytes:
    """The whole file; DinogenError("<what> <path> ...; <hint>.") when it cannot be read.

    what names the file for the user ("checkpoint", "names file"); hint says what to do.
    """
    try:
        if path.is_dir():
            raise DinogenError(f"{what} {path} is a folder, not a file; {hint}.")
        return path.read_bytes()
    except FileNotFoundError:
        raise DinogenError(f"{what} {path} does not exist; {hint}.") from None
    except PermissionError:
        raise DinogenError(f"{what} {path} cannot be read (permission denied); check its permissions.") from None
    except OSError as exc:
        raise DinogenError(f"{what} {path} cannot be read ({exc.strerror}); {hint}.") from None
