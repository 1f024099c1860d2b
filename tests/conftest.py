"""Shared fixtures: the bundled names, the course file when present, a small trained model."""

from pathlib import Path

import pytest

from dinogen import checkpoint
from dinogen.data import NameList, read_names
from dinogen.train import Trainer, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_NAMES = ROOT / "data" / "dinos.txt"
COURSE_FILE = ROOT.parent / "shared" / "data" / "dinos.txt"


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
    cfg = TrainConfig(cell="rnn", hidden=32, embed_dim=0, dropout=0.0, steps=300, eval_every=100, seed=3)
    trainer = Trainer(bundled_names, cfg)
    trainer.run()
    return trainer


@pytest.fixture(scope="session")
def small_checkpoint(small_trainer, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "small.npz"
    checkpoint.save(path, small_trainer.checkpoint())
    return path


@pytest.fixture(scope="session")
def parrot_trainer():
    """A model that has learnt eight names by heart, so it mostly repeats them."""
    names = NameList(["Alosaurus", "Bruhathkayosaurus", "Coelophysis", "Diplodocus", "Edmontosaurus",
                      "Iguanodon", "Stegosaurus", "Triceratops"], list(range(1, 9)), "parrot.txt")
    trainer = Trainer(names, TrainConfig(cell="rnn", hidden=32, embed_dim=0, dropout=0.0, steps=400, lr=1e-2,
                                         val_fraction=0, eval_every=400, seed=1))
    trainer.run()
    return trainer


@pytest.fixture(scope="session")
def parrot_checkpoint(parrot_trainer, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "parrot.npz"
    checkpoint.save(path, parrot_trainer.checkpoint())
    return path
