"""The default training recipe: the settings that depend on how many names a list holds.

A list of 1,400 dinosaurs and one of 90,000 surnames need different training:
the small list is learnt by heart unless most activations are dropped, and a
cosine schedule over about 50 passes does best on it; the large one only needs
light dropout and about 15 passes, which ten minutes on one core can just
about give. Each rule below was measured on
lists of 1,400 to 89,000 names (README, Quality). A setting given explicitly is
never changed; only the ones left unset (None) are chosen here.
"""

from __future__ import annotations

import math
import os
import sys

SMALL_LIST = 1_500  # names: at or below this, the small-list settings hold
LARGE_LIST = 30_000  # names: at or above this, the large-list settings hold
DROPOUT_SMALL = 0.65  # dropout on a small list (best on both dinosaur lists)
DROPOUT_LARGE = 0.3  # dropout on a large list (best on 29,000 first names and 89,000 surnames)
LARGE_BATCH_FROM = 8_000  # names: from here batches of BATCH_LARGE, below it BATCH_SMALL
BATCH_SMALL, BATCH_LARGE = 32, 64  # names a batch
EPOCHS_SMALL = 50  # passes over a list of REFERENCE names that a cosine schedule spans ...
REFERENCE = 1_300  # ... (the training names of a dinosaur list), and fewer on larger lists:
EPOCHS_POWER = 0.3  # epochs = EPOCHS_SMALL * (n / REFERENCE) ** -EPOCHS_POWER (34 for 4,600, 15 for 72,000)
MIN_EPOCHS = 5
PATIENCE_SHARE = 0.2  # stop when the validation loss has not improved for this share of the planned steps
MIN_PATIENCE = 3  # ... but not before this many evaluations without a better one
REFIT_BELOW = LARGE_LIST  # names: --preset best refits smaller lists; on larger ones it would double a
#                          ten-minute run to add 10% to tens of thousands of names
EVALS_PER_EPOCH = 2  # validation losses per pass over the training names ...
EVAL_EVERY_RANGE = (100, 500)  # ... but never more often than every 100 steps nor rarer than every 500
MAX_WORKERS = 8  # processes sharing a step at most, however many cores there are
MIN_SHARE = 16  # names of a batch per process at least: smaller shares cost more in messages than they save
MIN_SHARE_WORK = 2**17  # names x gates x hidden^2 per process at least: below it a step is too short to share
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # gates of each cell (cells.CELLS), for the size of a step


def size_share(n_names: int) -> float:
    """Where a list of n_names lies between a small list (0) and a large one (1), on a log scale."""
    if n_names <= SMALL_LIST:
        return 0.0
    if n_names >= LARGE_LIST:
        return 1.0
    return math.log(n_names / SMALL_LIST) / math.log(LARGE_LIST / SMALL_LIST)


def dropout_for(n_names: int) -> float:
    """Dropout from the list's size: 0.65 for 1,500 names or fewer, 0.3 from 30,000, log-linear between."""
    share = size_share(n_names)
    return round(DROPOUT_SMALL + share * (DROPOUT_LARGE - DROPOUT_SMALL), 2)


def batch_size_for(n_names: int) -> int:
    """Batches of 32 names on lists under 8,000 names, 64 from there (more steps per second)."""
    return BATCH_LARGE if n_names >= LARGE_BATCH_FROM else BATCH_SMALL


def eval_every_for(n_train: int, batch_size: int) -> int:
    """Steps between validation losses: about two per epoch, within 100 to 500, a multiple of 50."""
    low, high = EVAL_EVERY_RANGE
    per_epoch = max(1, math.ceil(n_train / batch_size))
    every = 50 * round(per_epoch / EVALS_PER_EPOCH / 50)
    return min(max(every, low), high)


def epochs_for(n_train: int) -> float:
    """Passes over the training names that the cosine schedule spans: 50 for 1,300, fewer for more."""
    return max(MIN_EPOCHS, EPOCHS_SMALL * (max(n_train, 1) / REFERENCE) ** -EPOCHS_POWER)


def steps_for(n_train: int, batch_size: int) -> int:
    """Steps of epochs_for(n_train) passes, a multiple of 50."""
    return max(50, 50 * round(epochs_for(n_train) * n_train / batch_size / 50))


def patience_for(steps: int, eval_every: int) -> int:
    """Evaluations without a better validation loss that stop a run: a fifth of its length."""
    return max(MIN_PATIENCE, round(PATIENCE_SHARE * steps / eval_every))


def refits(n_names: int) -> bool:
    """Whether --preset best trains a second time on every name, for a list of n_names."""
    return n_names < REFIT_BELOW


def cores() -> int:
    """The cores this process may run on, for worker processes: 1 where they cannot be
    forked safely (no os.fork on Windows; macOS's Accelerate BLAS is not fork-safe)."""
    if not hasattr(os, "fork") or sys.platform == "darwin":
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # other Unix systems
        return os.cpu_count() or 1


def workers_for(batch_size: int, cell: str, hidden: int, available: int) -> int:
    """Processes to share each step: one per core, at most MAX_WORKERS, each with MIN_SHARE
    names or more and MIN_SHARE_WORK of a step's work or more (one for small models)."""
    work = batch_size * GATES[cell] * hidden**2
    return max(1, min(available, MAX_WORKERS, batch_size // MIN_SHARE, work // MIN_SHARE_WORK))


def choose(n_names: int, n_train: int, given: dict) -> dict:
    """The size-dependent settings that `given` leaves as None, chosen for a list of
    n_names names of which n_train are trained on. The length (steps) and the patience
    are chosen only together: a run whose steps were given has no patience unless given."""
    chosen: dict = {}
    if given.get("dropout") is None:
        chosen["dropout"] = dropout_for(n_names)
    batch_size = chosen["batch_size"] = given.get("batch_size") or batch_size_for(n_names)
    eval_every = chosen["eval_every"] = given.get("eval_every") or eval_every_for(n_train, batch_size)
    steps = chosen["steps"] = given.get("steps") or steps_for(n_train, batch_size)
    if given.get("patience") is None:  # nothing to be patient about with given steps or no validation names
        watch = given.get("steps") is None and given.get("val_fraction", 0.1) > 0
        chosen["patience"] = patience_for(steps, eval_every) if watch else 0
    if given.get("workers") is None:
        chosen["workers"] = workers_for(batch_size, given["cell"], given["hidden"], cores())
    return {k: v for k, v in chosen.items() if given.get(k) is None}
