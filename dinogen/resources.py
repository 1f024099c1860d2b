"""Files that ship with dinogen: the bundled names and the pretrained model.

In an installed wheel both live in dinogen/assets/ (the build copies
data/dinos.txt there); in a source checkout the names are read from data/.
"""

from __future__ import annotations

import os
from pathlib import Path

from dinogen.errors import DinogenError

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS = PACKAGE_DIR / "assets"
DEFAULT_CHECKPOINT = "dinogen.npz"  # what `train` writes and `sample` looks for first


def bundled_names() -> Path:
    """data/dinos.txt as installed, or from the source tree."""
    for candidate in (ASSETS / "dinos.txt", PACKAGE_DIR.parent / "data" / "dinos.txt"):
        if candidate.is_file():
            return candidate
    raise DinogenError("the bundled data/dinos.txt is missing from this installation; reinstall dinogen or give a file.")


def bundled_model() -> Path:
    """The pretrained default model (trained on data/dinos.txt by scripts/train_default.py)."""
    path = ASSETS / "default.npz"
    if not path.is_file():
        raise DinogenError("the bundled model is missing from this installation; reinstall dinogen or pass -c PATH.")
    return path


def resolve_checkpoint(path: str | Path | None) -> tuple[Path, str]:
    """The checkpoint to use and why: an explicit path, ./dinogen.npz, or the bundled model."""
    if path is not None:
        return Path(path), "given with -c"
    local = Path(DEFAULT_CHECKPOINT)
    if os.path.lexists(local):  # a folder or a broken link there is said when read, not passed over
        if local.exists() and not (local.is_file() or local.is_dir()):  # a FIFO would wait, a device never end
            raise DinogenError(f"./{DEFAULT_CHECKPOINT} is not a regular file (a FIFO, a socket or a device), so it "
                               "is not read; give a checkpoint with -c.")
        return local, f"./{DEFAULT_CHECKPOINT} in the current folder"
    return bundled_model(), "the bundled pretrained model"
