"""Shared fixtures: the bundled names, the course file when present, a small trained model."""

from pathlib import Path

import pytest

from dinogen import checkpoint
from dinogen.data import NameList, read_names
from dinogen.config import TrainConfig
from dinogen.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_NAMES = ROOT / "data" / "dinos.txt"
COURSE_FILE = ROOT.parent / "shared" / "data" / "dinos.txt"


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
