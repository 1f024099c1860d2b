"""Training: a seeded split, bucketed mini-batches, Adam or SGD, clipping, evaluation.

The library reports progress through a callback and never prints; the CLI turns
the callback into a progress bar.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from dinogen import __version__, model
from dinogen.checkpoint import Checkpoint
from dinogen.data import BatchSchedule, NameList, Vocab, encode_names, make_batch, split_indices
from dinogen.errors import DinogenError
from dinogen.optim import OPTIMIZERS, clip_global_norm

TRAIN_SUBSET = 5000  # names of the training split used to report the final training loss


@dataclass
class TrainConfig:
    cell: str = "rnn"  # recurrent cell: rnn
    hidden: int = 128  # H: hidden units per layer
    layers: int = 1  # stacked recurrent layers
    steps: int = 3000  # optimizer steps (one batch each); max_seconds may stop sooner
    max_seconds: float | None = None  # wall-clock limit on training; None = steps alone decide
    batch_size: int = 32  # names per batch
    lr: float = 3e-3  # learning rate
    optimizer: str = "adam"  # adam | sgd
    clip: float = 5.0  # max global L2 norm of the gradient; 0 turns clipping off
    seed: int = 1337  # seeds the initial weights, the split and the batch order
    val_fraction: float = 0.1  # share of names held out for validation, never trained on
    eval_every: int = 250  # steps between validation evaluations
    lowercase: bool = False  # fold names to lower case before training (the course does)

    def check(self) -> None:
        """Raise DinogenError for values training cannot run with."""
        problems = [
            (self.steps < 1, "steps must be at least 1"),
            (self.hidden < 1, "hidden must be at least 1"),
            (self.layers < 1, "layers must be at least 1"),
            (self.batch_size < 1, "batch size must be at least 1"),
            (not self.lr > 0 or not math.isfinite(self.lr), "the learning rate must be a positive number"),
            (not self.clip >= 0, "clip must be 0 (off) or positive"),
            (not 0 <= self.val_fraction < 1, "the validation fraction must be at least 0 and below 1"),
            (self.eval_every < 1, "eval every must be at least 1 step"),
            (self.max_seconds is not None and not self.max_seconds > 0, "max seconds must be positive"),
            (self.optimizer not in OPTIMIZERS, f"the optimizer must be one of {', '.join(OPTIMIZERS)}"),
        ]
        for failed, message in problems:
            if failed:
                raise DinogenError(message + ".")


@dataclass
class Progress:
    """What the trainer reports after every step."""

    step: int  # steps done
    steps: int  # steps planned
    loss: float  # this batch's loss, nats per character
    smooth_loss: float  # exponential moving average of the loss, started at ln V
    val_loss: float | None  # latest validation loss
    chars_per_sec: float  # real predictions per second of training


def data_fingerprint(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


class Trainer:
    """Owns the data, the parameters, the optimizer and the loss history of one run."""

    def __init__(self, names: NameList, cfg: TrainConfig) -> None:
        cfg.check()
        if not names.names:
            raise DinogenError(f"{names.source} holds no names; give a file with one name per line.")
        self.cfg = cfg
        self.names = names
        self.vocab = Vocab.from_names(names.names)
        self.data = encode_names(names.names, self.vocab, names.line_numbers)
        self.train_idx, self.val_idx = split_indices(len(self.data), cfg.val_fraction, cfg.seed)
        self.model_cfg = model.ModelConfig(self.vocab.size, cfg.cell, cfg.hidden, cfg.layers)
        self.params = model.init_params(self.model_cfg, np.random.default_rng(cfg.seed))
        self.optimizer = OPTIMIZERS[cfg.optimizer](self.params, lr=cfg.lr)
        self.schedule = BatchSchedule(self.train_idx, self.data.lengths, cfg.batch_size, cfg.seed)
        self.step = 0
        self.smooth_loss = math.log(self.vocab.size)
        self.train_history: list[tuple[int, float]] = []  # (step, smoothed loss) at each evaluation
        self.val_history: list[tuple[int, float]] = []  # (step, validation loss)
        self.best: dict[str, np.ndarray] | None = None
        self.best_val: tuple[int, float] | None = None  # (step, loss) of the best parameters
        self.seconds = 0.0  # time spent in training steps
        self.predictions = 0  # real predictions trained on

    def train_step(self) -> float:
        """One optimizer step on the next batch; returns its loss (nats per character)."""
        batch = make_batch(self.data, self.schedule[self.step])
        loss, grads = model.loss_and_grads(self.params, self.model_cfg, batch)
        norm = clip_global_norm(grads, self.cfg.clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise DinogenError(
                f"training diverged at step {self.step + 1} (loss {loss}); lower --lr or keep --clip on."
            )
        self.optimizer.step(self.params, grads)
        self.step += 1
        self.predictions += batch.n_predictions
        self.smooth_loss = 0.999 * self.smooth_loss + 0.001 * loss
        return loss

    def loss_on(self, idx: np.ndarray, params: dict[str, np.ndarray] | None = None) -> float | None:
        """Mean NLL per character over the names idx, or None when there are none."""
        if len(idx) == 0:
            return None
        total, count = model.total_nll(params or self.params, self.model_cfg, self.data, idx)
        return total / count

    def evaluate(self) -> float | None:
        """Validation loss now; records it and keeps the parameters if they are the best."""
        val = self.loss_on(self.val_idx)
        self.train_history.append((self.step, self.smooth_loss))
        if val is not None:
            self.val_history.append((self.step, val))
            if self.best_val is None or val < self.best_val[1]:
                self.best_val = (self.step, val)
                self.best = {k: v.copy() for k, v in self.params.items()}
        return val

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> dict:
        """Train until cfg.steps or cfg.max_seconds; returns the summary dict."""
        started = time.perf_counter()
        val = None
        while self.step < self.cfg.steps:
            t0 = time.perf_counter()
            loss = self.train_step()
            self.seconds += time.perf_counter() - t0
            out_of_time = self.cfg.max_seconds is not None and time.perf_counter() - started >= self.cfg.max_seconds
            if self.step % self.cfg.eval_every == 0 and self.step < self.cfg.steps and not out_of_time:
                val = self.evaluate()
            if on_progress is not None:
                on_progress(Progress(self.step, self.cfg.steps, loss, self.smooth_loss, val, self.chars_per_sec))
            if out_of_time:
                break
        self.evaluate()
        return self.summary(time.perf_counter() - started)

    @property
    def chars_per_sec(self) -> float:
        return self.predictions / self.seconds if self.seconds > 0 else 0.0

    def summary(self, seconds: float) -> dict:
        subset = self.train_idx[:: max(1, len(self.train_idx) // TRAIN_SUBSET)]
        return {
            "steps": self.step,
            "seconds": round(seconds, 3),
            "chars_per_sec": round(self.chars_per_sec, 1),
            "train_loss": self.loss_on(subset),
            "smooth_loss": self.smooth_loss,
            "val_loss": self.val_history[-1][1] if self.val_history else None,
            "best_val_loss": self.best_val[1] if self.best_val else None,
            "best_step": self.best_val[0] if self.best_val else None,
            "uniform_loss": math.log(self.vocab.size),
            "vocab_size": self.vocab.size,
            "train_names": len(self.train_idx),
            "val_names": len(self.val_idx),
        }

    def checkpoint(self) -> Checkpoint:
        """Everything needed to sample, evaluate and continue, as one Checkpoint."""
        meta = {
            "dinogen_version": __version__,
            "model": self.model_cfg.to_dict(),
            "vocab": list(self.vocab.chars),
            "lowercase": self.cfg.lowercase,
            "train": asdict(self.cfg),
            "step": self.step,
            "seconds": self.seconds,
            "smooth_loss": self.smooth_loss,
            "history": {"train": self.train_history, "val": self.val_history},
            "best": {"step": self.best_val[0], "val_loss": self.best_val[1]} if self.best_val else None,
            "data": {
                "source": self.names.source,
                "names": len(self.data),
                "sha256": data_fingerprint(self.names.names),
                "val_names": len(self.val_idx),
            },
        }
        return Checkpoint(self.params, meta, self.best, self.optimizer.state_dict(), self.data)
