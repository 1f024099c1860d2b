"""Every setting in one place, without NumPy: the model and training configs, the
presets, and one table of what each setting may be.

The table (RULES) is read by TrainConfig.check(), by the checks of a
checkpoint's metadata (dinogen/metadata_checks.py) and by the command line, which builds
its option types, ranges, choices, help and stated defaults from it; so a range
is written once. Defaults live in the dataclasses; None means "chosen for the
list" by dinogen.recipe (see TrainConfig.resolved()).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace

from dinogen import recipe
from dinogen.errors import DinogenError, SettingsConflict

CELL_NAMES = ("rnn", "gru", "lstm")  # the keys of cells.CELLS
OPTIMIZER_NAMES = ("adam", "sgd")  # the keys of optim.OPTIMIZERS
SCHEDULES = ("cosine", "constant")
MAX_WORKERS_GIVEN = 64  # processes a run may be given (--workers, or a checkpoint when resuming): more forks without speed
MAX_CATEGORIES = 1_000  # categories one model may be conditioned on (a file, a TSV label each)
CATEGORY_FORMS = ("files", "tsv")  # train --categories: a category per file, or one file's name<TAB>category lines
BUG_NAMES = ("softmax-axis", "target-axis", "dwhh-from-dh", "padding-counted", "no-accumulate",
             "tanh-from-preactivation")  # the keys of bugs.BUGS, for `gradcheck --bug` without NumPy
WEIGHT_LIMIT = 1e4  # the largest weight a checkpoint holds: trained ones stay below 10 (the bundled model's: 3.4);
#                    larger ones would overflow float32 predictions, so training stops as diverged beyond it
DEFAULT_MAX_SECONDS = 600.0  # when the steps are chosen for the list, a run never lasts longer than ten minutes

# Defaults of the commands beyond training's settings, here so that the help states them without importing NumPy
ENCODING = "utf-8"  # text encoding of a names file or of stdin, unless --encoding says another
MAX_NAME_LENGTH = 64  # train: names longer than this are skipped when reading
MAX_SCORED_LENGTH = 1_000  # score, classify, eval: names longer than this are skipped (and reported)
LONGEST_NAME_LIMIT = 1_000_000  # the largest --max-name-length any command takes (the reader's limits grow with it)
DEFAULT_MAX_LEN = 100  # sample: longest name sampled, in characters; longer drafts are dropped
DROUGHT = 100_000  # sample without --max-attempts: give up after this many candidates in a row with no name passing
DEFAULT_BEAM_WIDTH = 4096  # sample --likeliest: hypotheses kept per step; see docs/sampling.md for its effect, measured
GRADCHECK_LAYERS = (1, 2)  # gradcheck without --layers: the layer counts checked


def is_finite_number(value) -> bool:
    """A finite int or float that fits a float (JSON also reads NaN, Infinity and 10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


@dataclass(frozen=True)
class Rule:
    """What one setting may be: its type, its range or its choices, and whether None is allowed."""

    what: str  # the setting in a sentence: "the batch size"
    kind: type  # int, float, str or bool
    low: float | None = None  # the smallest value allowed ...
    high: float | None = None  # ... and the largest
    low_open: bool = False  # True: low itself is not allowed
    high_open: bool = False  # True: high itself is not allowed
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None is allowed: chosen for the list, or no limit
    help: str = ""  # the option's help on the command line, without its default
    chosen: str = ""  # how None is chosen, for the help: "32, or 64 from 8,000 names"

    def type_problem(self, value) -> str | None:
        """The expected type, when value does not have it (JSON: bools are not numbers)."""
        if value is None:
            return None if self.optional else self.type_name()
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind is float:
            ok = is_finite_number(value)
        else:
            ok = isinstance(value, str)
        return None if ok else self.type_name()

    def type_name(self) -> str:
        name = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string"}[self.kind]
        return name + (" or null" if self.optional else "")

    def problem(self, value) -> str | None:
        """What value should be instead ("a whole number of at least 1"), or None when it is fine."""
        wrong_type = self.type_problem(value)
        if wrong_type or value is None:
            return wrong_type
        if self.choices is not None and value not in self.choices:
            return "one of " + ", ".join(self.choices)
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return self.range_name() if too_low or too_high else None

    def range_name(self) -> str:
        """The allowed values in words: "a whole number of at least 1", "a number at least 0 and below 1"."""
        if self.kind in (bool, str):
            return "one of " + ", ".join(self.choices) if self.choices else self.type_name()
        noun = "a whole number" if self.kind is int else "a finite number"
        number = "{:,}" if self.kind is int else "{:g}"  # 9,223,372,036,854,775,807, not 9.22337e+18
        bounds = []
        if self.low is not None:
            bounds.append(("above " if self.low_open else "at least ") + number.format(self.low))
        if self.high is not None:
            bounds.append(("below " if self.high_open else "at most ") + number.format(self.high))
        if self.kind is int and bounds and not self.high:
            return f"{noun} of {bounds[0]}"
        return f"{noun} " + " and ".join(bounds) if bounds else noun

    def check(self, value) -> None:
        """Raise SettingsConflict with one sentence when value breaks the rule."""
        expected = self.problem(value)
        if expected:
            raise SettingsConflict(f"{self.what} must be {expected}, not {value!r}.")


RULES: dict[str, Rule] = {
    # the model
    "vocab_size": Rule("the vocabulary size", int, low=2),
    "categories": Rule("the number of categories", int, low=0, high=MAX_CATEGORIES),
    "cell": Rule("the cell", str, choices=CELL_NAMES, help="Recurrent cell."),
    "hidden": Rule("hidden units", int, low=1, help="Hidden units per layer."),
    "layers": Rule("the number of layers", int, 1, 3, help="Stacked recurrent layers."),
    "embed_dim": Rule("the embedding size", int, low=0, help="Embedding width before the first layer; 0 = none."),
    "dropout": Rule("dropout", float, 0, 1, high_open=True, optional=True,
                    help="Dropout on non-recurrent connections while training.",
                    chosen=f"from the list's size, {recipe.DROPOUT_SMALL} for {recipe.SMALL_LIST:,} names down to "
                           f"{recipe.DROPOUT_LARGE} from {recipe.LARGE_LIST:,}"),
    # the run
    "steps": Rule("the steps", int, low=1, optional=True, help="Optimizer steps, exactly.",
                  chosen="the epochs the list's size needs, stopped early on a plateau"),
    "max_seconds": Rule("max seconds", float, low=0, low_open=True, optional=True,
                        help="Stop after this many seconds of the run.",
                        chosen=f"{DEFAULT_MAX_SECONDS:g} when the steps are chosen, else none"),
    "batch_size": Rule("the batch size", int, low=1, optional=True, help="Names per batch.",
                       chosen=f"{recipe.BATCH_SMALL}, or {recipe.BATCH_LARGE} from {recipe.LARGE_BATCH_FROM:,} names"),
    "lr": Rule("the learning rate", float, low=0, low_open=True, help="Peak learning rate."),
    "schedule": Rule("the schedule", str, choices=SCHEDULES,
                     help="Learning-rate schedule: cosine goes down to 5% of --lr over the steps or the time limit."),
    "lr_floor": Rule("the learning-rate floor", float, 0, 1),
    "optimizer": Rule("the optimizer", str, choices=OPTIMIZER_NAMES, help="Optimizer."),
    "weight_decay": Rule("weight decay", float, low=0, help="Decoupled (AdamW-style) weight decay."),
    "clip": Rule("clip", float, low=0, help="Max global gradient norm; 0 turns clipping off."),
    "clip_mode": Rule("the clip mode", str, choices=("norm", "value")),
    "loss_per": Rule("the loss", str, choices=("char", "name")),
    "seed": Rule("the seed", int, low=0, high=2**63 - 1, help="Seed for weights, split and batch order."),
    "workers": Rule("workers", int, 1, MAX_WORKERS_GIVEN, optional=True,
                    help="Processes that share each training step (results depend on it; see docs/performance.md).",
                    chosen=f"one per core, at most {recipe.MAX_WORKERS}, 1 for small batches and models"),
    "val_fraction": Rule("the validation fraction", float, 0, 1, high_open=True,
                         help="Share of names held out for validation."),
    "eval_every": Rule("eval every", int, low=1, optional=True, help="Steps between validation losses.",
                       chosen=f"about {recipe.EVALS_PER_EPOCH} per epoch, "
                              f"{recipe.EVAL_EVERY_RANGE[0]} to {recipe.EVAL_EVERY_RANGE[1]}"),
    "patience": Rule("patience", int, low=0, optional=True,
                     help="Stop after this many evaluations without a better validation loss; 0 = never.",
                     chosen=f"{recipe.PATIENCE_SHARE:.0%} of the chosen steps, 0 with --steps"),
    "lowercase": Rule("lowercase", bool, help="Fold names to lower case first (as the classic course does)."),
    "refit": Rule("refit", bool),
}


def problems_of(values: dict, rules: dict[str, Rule] | None = None) -> tuple[str, str] | None:
    """The first (name, expected) of values that breaks its rule in rules (RULES by default),
    for the names the table knows."""
    rules = RULES if rules is None else rules
    for name, value in values.items():
        if name in rules:
            expected = rules[name].problem(value)
            if expected:
                return name, expected
    return None


@dataclass
class ModelConfig:
    vocab_size: int  # V: characters + the boundary token
    cell: str = "rnn"  # recurrent cell: rnn | gru | lstm (a key of cells.CELLS)
    hidden: int = 128  # H: units per recurrent layer
    layers: int = 1  # stacked recurrent layers
    embed_dim: int = 0  # E: embedding width before the first layer; 0 = look rows up in W_xh.0
    dropout: float = 0.0  # drop probability on non-recurrent connections, in training only
    categories: int = 0  # K: categories the model is conditioned on; 0 = one list, no conditioning

    def to_dict(self) -> dict:
        """The checkpoint's "model" entry; a model of one list writes no categories, as before they existed."""
        values = asdict(self)
        if not self.categories:
            del values["categories"]
        return values


@dataclass
class TrainConfig:
    """Every training setting; RULES says what each may be. None means "chosen for
    the list" by dinogen.recipe (see resolved())."""

    cell: str = "lstm"  # recurrent cell: rnn | gru | lstm (the LSTM generalised best)
    hidden: int = 512  # H: hidden units per layer (512 did best on lists of 1,400 to 89,000 names)
    layers: int = 1  # stacked recurrent layers
    embed_dim: int = 64  # E: embedding before the first layer; 0 = direct row lookup
    dropout: float | None = None  # inverted dropout on non-recurrent connections; None: from the list's size
    steps: int | None = None  # optimizer steps (one batch each); None: the epochs the list's size needs
    max_seconds: float | None = None  # wall-clock limit; None: DEFAULT_MAX_SECONDS when steps are chosen, else none
    batch_size: int | None = None  # names per batch; None: from the list's size
    lr: float = 3e-3  # peak learning rate
    schedule: str = "cosine"  # cosine (to lr * lr_floor over the steps or the time limit) | constant
    lr_floor: float = 0.05  # where the cosine ends, as a fraction of lr
    optimizer: str = "adam"  # adam | sgd
    weight_decay: float = 0.05  # decoupled (AdamW-style) decay of the weight matrices and embedding, not biases
    clip: float = 5.0  # gradient clipping limit; 0 turns clipping off
    clip_mode: str = "norm"  # norm: global L2 norm | value: each entry (as the course does)
    loss_per: str = "char"  # char: mean over characters | name: sum over each name (the course)
    seed: int = 1337  # seeds the initial weights, the split, the batch order and dropout
    workers: int | None = None  # processes sharing each step (1: this one alone); None: one per core, at most 8,
    #                             fewer for small batches and models (recipe.workers_for)
    val_fraction: float = 0.1  # share of names held out for validation, never trained on
    eval_every: int | None = None  # steps between validation evaluations; None: about twice an epoch
    patience: int | None = None  # stop after this many evaluations without a new best; 0 = never;
    #                              None: a fifth of the chosen steps, or 0 when steps are given
    lowercase: bool = False  # fold names to lower case before training (the course does)
    refit: bool = False  # then train again on every name, for as many epochs as made the best (--preset best)

    def check(self) -> None:
        """Raise SettingsConflict for values training cannot run with (None: chosen later)."""
        for name, value in asdict(self).items():
            RULES[name].check(value)
        if self.patience and self.val_fraction == 0:
            raise SettingsConflict("--patience needs validation names to watch; hold some out with --val-fraction.")
        if self.workers is not None and self.workers > 1 and not hasattr(os, "fork"):
            raise SettingsConflict("--workers above 1 needs os.fork, which this platform does not have; give --workers 1.")
        if self.refit and self.val_fraction == 0:
            raise SettingsConflict("a refit finds its length on validation names; drop --val-fraction 0.")

    def resolved(self, n_names: int, n_train: int) -> "TrainConfig":
        """This config with every None chosen, for a list of n_names names of which n_train
        are trained on (dinogen.recipe), and the time limit when the steps are chosen."""
        limit = self.max_seconds if self.max_seconds is not None or self.steps is not None else DEFAULT_MAX_SECONDS
        return replace(self, **recipe.choose(n_names, n_train, asdict(self)), max_seconds=limit)


TRAIN_SETTINGS = tuple(f.name for f in fields(TrainConfig))

PRESETS: dict[str, dict] = {
    # The classic course notebook: a vanilla RNN of 50 units, one lower-cased name
    # per step, SGD at 0.01 on the loss summed over the name, entries clipped to +-5.
    "course": dict(
        cell="rnn", hidden=50, layers=1, embed_dim=0, dropout=0.0, batch_size=1, optimizer="sgd", lr=0.01,
        schedule="constant", clip=5.0, clip_mode="value", loss_per="name", weight_decay=0.0,
        lowercase=True, steps=35000, eval_every=1000,
    ),
    # The lowest held-out loss we found on every list (README, Quality): the default
    # recipe, which finds the length on validation names, then a second run on every
    # name for as many epochs (train.refit_config).
    "best": dict(refit=True),
}


def config_from(preset: str | None = None, **overrides) -> TrainConfig:
    """A TrainConfig from a preset, with explicit values taking precedence."""
    if preset is not None and preset not in PRESETS:
        raise DinogenError(f"there is no preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    values = dict(PRESETS[preset]) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
