"""Shared fixtures: the bundled names, the course file when present, a small trained model."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dinogen import checkpoint
from dinogen.checkpoint import DIGEST_LEN, DIGEST_PREFIX
from dinogen.cli import main
from dinogen.data import NameList, read_names
from dinogen.config import TrainConfig
from dinogen.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_NAMES = ROOT / "data" / "dinos.txt"
COURSE_FILE = ROOT.parent / "shared" / "data" / "dinos.txt"


TINY = ["--steps", "3", "--hidden", "8", "-q"]  # train flags for a run that takes a moment


def train(tmp_path, content: bytes | None, *flags, name="names.txt"):
    """Run `dinogen train` on a file holding content (None: no file at all)."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["train", str(path), "-o", str(out), *flags])
    return result, out


def with_member(src: Path, dst: Path, name: str, data: bytes, compress: bool) -> Path:
    """A copy of a good checkpoint with one more zip member, sealed again as dinogen seals."""
    raw = src.read_bytes()
    buffer = io.BytesIO(raw[: -(len(DIGEST_PREFIX) + DIGEST_LEN) - 2])  # the archive without its comment
    with zipfile.ZipFile(io.BytesIO(raw)) as source, zipfile.ZipFile(buffer, "w") as archive:
        for member in source.infolist():
            archive.writestr(member, source.read(member))
        archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        archive.comment = DIGEST_PREFIX + b"0" * DIGEST_LEN
    body = buffer.getvalue()[:-DIGEST_LEN]
    dst.write_bytes(body + hashlib.sha256(body).hexdigest().encode("ascii"))
    return dst


def trained(names, **settings):
    """A quick vanilla RNN of 32 units trained on names (settings override)."""
    plain = {"cell": "rnn", "hidden": 32, "embed_dim": 0, "dropout": 0.0, "weight_decay": 0.0}
    trainer = Trainer(names, TrainConfig(**{**plain, **settings}))
    trainer.run()
    return trainer


def saved(trainer, tmp_path_factory, name):
    path = tmp_path_factory.mktemp("ckpt") / name
    checkpoint.save(path, trainer.checkpoint())
    return path


@pytest.fixture(scope="session")
def bundled_names():
    return read_names(BUNDLED_NAMES)


@pytest.fixture(scope="session")
def course_file():
    if not COURSE_FILE.is_file():
        pytest.skip("the course file ../shared/data/dinos.txt is not present")
    return COURSE_FILE


@pytest.fixture(scope="session")
def small_trainer(bundled_names):
    """A small vanilla RNN trained for a few hundred steps on the bundled names."""
    return trained(bundled_names, steps=300, eval_every=100, seed=3)


@pytest.fixture(scope="session")
def small_checkpoint(small_trainer, tmp_path_factory):
    return saved(small_trainer, tmp_path_factory, "small.npz")


@pytest.fixture(scope="session")
def parrot_trainer():
    """A model that has learnt eight names by heart, so it mostly repeats them."""
    names = NameList(["Alosaurus", "Bruhathkayosaurus", "Coelophysis", "Diplodocus", "Edmontosaurus",
                      "Iguanodon", "Stegosaurus", "Triceratops"], list(range(1, 9)), "parrot.txt")
    return trained(names, steps=400, lr=1e-2, val_fraction=0, eval_every=400, seed=1)


@pytest.fixture(scope="session")
def parrot_checkpoint(parrot_trainer, tmp_path_factory):
    return saved(parrot_trainer, tmp_path_factory, "parrot.npz")
