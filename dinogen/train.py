"""Training: bucketed mini-batches, Adam or SGD, clipping, evaluation, the loop.

The Trainer is the step and the loop; its parts live beside it, one job each: the
names as the run sees them (run_data.RunData: folded, encoded, split), where the
run stands and when it stops (run_state.RunState, which the checkpoint records),
the worker processes (parallel.SharedSteps) and the summary (run_summary). The
library reports progress through a callback and never prints; the CLI turns the
callback into a progress bar.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np

from dinogen import __version__, model, recipe
from dinogen.checkpoint import Checkpoint
from dinogen.config import WEIGHT_LIMIT, TrainConfig
from dinogen.data import BatchSchedule, NameList, make_batch
from dinogen.errors import DinogenError
from dinogen.optim import OPTIMIZERS, clip_elementwise, clip_global_norm, global_norm
from dinogen.parallel import SharedSteps
from dinogen.run_data import RunData
from dinogen.run_state import RunState
from dinogen.run_summary import summarise
from dinogen.schedule import budget_spent, cosine_lr
from dinogen.workspace import Workspace

REFIT_STRETCH = 1.0  # a refit trains this many times the epochs of the first run's best
SMOOTH_WINDOWS = (10, 200)  # the smoothed loss averages over a twentieth of the run, within these steps


@dataclass
class Progress:
    """What the trainer reports after every step."""

    step: int  # steps done
    steps: int  # steps planned
    loss: float  # this batch's loss, nats per character
    smooth_loss: float  # the mean training loss of about the last SMOOTH_WINDOW steps (bias-corrected)
    val_loss: float | None  # latest validation loss
    chars_per_sec: float  # real predictions per second of training


class Diverged(DinogenError):
    """The loss or the gradient stopped being a finite number; nothing was updated."""


def smooth_window(steps: int) -> int:
    """Steps the smoothed training loss roughly averages over: a twentieth of the run, 10 to 200."""
    low, high = SMOOTH_WINDOWS
    return min(max(steps // 20, low), high)


class Trainer:
    """Owns the parameters, the optimizer and the state of one run, and runs its steps."""

    def __init__(self, names: NameList, cfg: TrainConfig) -> None:
        cfg.check()
        self.run_data = run = RunData.prepare(names, cfg)
        given, cfg = cfg, cfg.resolved(len(run.data), len(run.train_idx))
        self.cfg = cfg
        self.chosen = {k: v for k, v in asdict(cfg).items() if getattr(given, k) is None}  # what was left to us
        self.refits = (cfg.refit and recipe.refits(len(run.data))  # a second run on every name follows this one,
                       and len(run.val_idx) > 0)  # unless this one held none out (a list too small to split)
        self.model_cfg = model.ModelConfig(run.vocab.size, cfg.cell, cfg.hidden, cfg.layers, cfg.embed_dim, cfg.dropout,
                                           len(run.category_names))
        self.params = model.init_params(self.model_cfg, np.random.default_rng(cfg.seed))
        self.optimizer = OPTIMIZERS[cfg.optimizer](self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.workspace = Workspace()  # the training step's arrays, reused from step to step
        self.schedule = BatchSchedule(run.train_idx, run.data.lengths, cfg.batch_size, cfg.seed)
        self.stop_reason: str | None = None  # why run() stopped: steps, time, patience, interrupted
        self.state = RunState(smooth_loss=math.log(run.vocab.size))  # counters, histories, the best's record
        self.smooth_beta = 1.0 - 1.0 / smooth_window(cfg.steps)  # decay of the smoothed loss's moving average
        self.best: dict[str, np.ndarray] | None = None  # the parameters of state.best_val
        self.shared: SharedSteps | None = None  # the worker processes, while run() runs with cfg.workers > 1

    # the run's data, as the run sees it (run_data.RunData)
    names = property(lambda self: self.run_data.names)
    category_names = property(lambda self: self.run_data.category_names)
    data_sha256 = property(lambda self: self.run_data.data_sha256)
    vocab = property(lambda self: self.run_data.vocab)
    data = property(lambda self: self.run_data.data)
    train_idx = property(lambda self: self.run_data.train_idx)
    val_idx = property(lambda self: self.run_data.val_idx)
    val_probe = property(lambda self: self.run_data.val_probe)

    # where the run stands (run_state.RunState)
    step = property(lambda self: self.state.step)
    best_val = property(lambda self: self.state.best_val)
    val_history = property(lambda self: self.state.val_history)
    stale_evals = property(lambda self: self.state.stale_evals)
    elapsed = property(lambda self: self.state.elapsed)
    smooth_loss = property(lambda self: self.state.smooth_loss)

    def budget_spent(self) -> float:
        """The share of the steps or time budget spent so far (0 when there is none)."""
        return budget_spent(self.state.step, self.state.elapsed, self.cfg.steps, self.cfg.max_seconds)

    def learning_rate(self) -> float:
        """The learning rate of the next step, from the schedule and where the run is.

        When the clock is further through its limit than the steps are through theirs,
        the cosine follows the clock, and the run is no longer a pure function of its
        settings: state.clock_led records that it happened."""
        cfg, budget = self.cfg, self.budget_spent()
        if cfg.schedule != "cosine":
            return cfg.lr
        if budget > self.state.step / cfg.steps:
            self.state.clock_led = True
        return cosine_lr(cfg.lr, budget, cfg.lr_floor)

    def train_step(self) -> float:
        """One optimizer step on the next batch; returns its loss (nats per character).

        Shared by the workers inside run() (or workers_running()); called outside,
        it runs in this process alone, as --workers 1 does, whatever cfg.workers says."""
        cfg, step = self.cfg, self.state.step
        lr = self.learning_rate()
        if self.shared is not None:
            loss, norm, predictions = self.shared.gradients(step)
            self.check_step(loss, norm)
            factor = cfg.clip / norm if cfg.clip_mode == "norm" and 0 < cfg.clip < norm else 0.0
            self.shared.update(step, lr, factor)
        else:
            self.optimizer.lr = lr
            batch = make_batch(self.data, self.schedule[step])
            dropout_rng = np.random.default_rng([cfg.seed, step, 1]) if cfg.dropout else None
            nll, cache = model.forward(self.params, self.model_cfg, batch, dropout_rng, self.workspace)
            per = len(nll) if cfg.loss_per == "char" else batch.x.shape[1]  # predictions, or names
            grads = model.backward(np.full_like(nll, 1.0 / per), cache)
            loss = float(nll.mean())
            clip = clip_global_norm if cfg.clip_mode == "norm" else clip_elementwise
            norm = clip(grads, cfg.clip) if cfg.clip > 0 else global_norm(grads)
            self.check_step(loss, norm)
            self.optimizer.step(self.params, grads)
            predictions = batch.n_predictions
        self.state.step += 1
        self.state.predictions += predictions
        beta, state = self.smooth_beta, self.state
        state.smooth_ema = beta * state.smooth_ema + (1 - beta) * loss
        state.smooth_norm = beta * state.smooth_norm + (1 - beta)  # 1 - beta^steps while beta stays the same
        state.smooth_loss = state.smooth_ema / state.smooth_norm  # corrected for the start at 0, as Adam corrects
        return loss

    def check_step(self, loss: float, norm: float) -> None:
        """Raise Diverged, before anything is updated, when the loss or the gradient's norm is not finite."""
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise Diverged(f"training diverged at step {self.state.step + 1} (loss {loss}); " + self.remedy())

    def loss_on(self, idx: np.ndarray, params: dict[str, np.ndarray] | None = None) -> float | None:
        """Mean NLL per character over the names idx, or None when there are none."""
        if len(idx) == 0:
            return None
        params = self.params if params is None else params
        total, count = model.total_nll(params, self.model_cfg, self.data, idx)
        return total / count

    def evaluate(self) -> float | None:
        """Validation loss now (on val_probe); records it and keeps the parameters if they are the best.

        Raises Diverged when the weights or the validation loss are no longer
        finite, before recording anything, so no checkpoint written after an
        evaluation holds them.
        """
        self.check_finite()
        shared = self.shared is not None and len(self.val_probe) > 0
        val = self.shared.validation_loss(self.state.step) if shared else self.loss_on(self.val_probe)
        if val is not None and not math.isfinite(val):
            raise Diverged(f"training diverged at step {self.state.step} (validation loss {val}); "
                           + self.remedy())
        if self.state.record_validation(val):
            self.best = {k: v.copy() for k, v in self.params.items()}
        return val

    def remedy(self) -> str:
        """What to change after a divergence: clipping only when it is off."""
        return "lower --lr or --weight-decay" + (", or keep --clip on." if self.cfg.clip == 0 else ".")

    def check_finite(self) -> None:
        """Raise Diverged when a weight is NaN, infinite or beyond WEIGHT_LIMIT (which no
        checkpoint may hold: its predictions would overflow)."""
        if not all(np.abs(p).max(initial=0) <= WEIGHT_LIMIT for p in self.params.values()):  # NaN: the max is NaN
            raise Diverged(f"training diverged at step {self.state.step} (the weights are no longer finite, or "
                           f"beyond {WEIGHT_LIMIT:,.0f}); " + self.remedy())

    def run(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        on_evaluate: Callable[["Trainer"], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict:
        """Train until cfg.steps, cfg.max_seconds, cfg.patience or should_stop() stops
        it; returns the summary. on_evaluate runs after every periodic evaluation
        (the CLI saves a checkpoint there).

        A run that ends evaluates once more, at its last step. A run stopped by
        should_stop does not: an evaluation off the schedule could change the best
        parameters and the patience count, and resuming would then differ from an
        uninterrupted run. The clock of --max-seconds continues a resumed run's.
        """
        started, first_step = time.perf_counter(), self.state.step
        clock_zero = started - self.state.elapsed  # the run's time 0, earlier sessions included
        self.stop_reason = None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is checked, not warned
            with self.workers_running():  # the last evaluation too, so every one of the run sums alike
                reason = self.train_until(on_progress, on_evaluate, should_stop, clock_zero)
                self.stop_reason = reason
                if reason != "interrupted" and (not self.state.val_history or self.state.val_history[-1][0] != self.state.step):
                    self.evaluate()
            return self.summary(time.perf_counter() - started, self.state.step - first_step)

    @contextlib.contextmanager
    def workers_running(self):
        """cfg.workers - 1 worker processes sharing every step, while the block runs (none for 1)."""
        if self.cfg.workers == 1:
            yield
            return
        with SharedSteps(self, self.cfg.workers) as self.shared:
            try:
                yield
            finally:
                self.shared = None

    def train_until(self, on_progress, on_evaluate, should_stop, clock_zero: float) -> str:
        """The loop of run(): steps, evaluations and callbacks until a reason to stop, which it returns."""
        cfg = self.cfg
        val = self.state.val_history[-1][1] if self.state.val_history else None
        while (reason := self.state.why_stop(cfg)) is None:
            if should_stop is not None and should_stop():
                reason = "interrupted"
                break
            t0 = time.perf_counter()
            loss = self.train_step()
            self.state.seconds += time.perf_counter() - t0
            self.state.elapsed = time.perf_counter() - clock_zero
            evaluated = self.state.step % cfg.eval_every == 0 and self.state.why_stop(cfg) is None
            if evaluated:  # not at the last step: the evaluation after the loop covers it
                val = self.evaluate()
                if on_evaluate is not None:
                    on_evaluate(self)
                self.state.elapsed = time.perf_counter() - clock_zero
            if on_progress is not None:
                on_progress(Progress(self.state.step, cfg.steps, loss, self.state.smooth_loss, val, self.chars_per_sec))
        return reason

    @property
    def chars_per_sec(self) -> float:
        return self.state.predictions / self.state.seconds if self.state.seconds > 0 else 0.0

    def summary(self, seconds: float, steps_run: int | None = None) -> dict:
        """What the run did (run_summary.summarise)."""
        return summarise(self, seconds, steps_run)

    def restore(self, ckpt: Checkpoint) -> None:
        """Take up the run saved in ckpt (the inverse of checkpoint()): parameters,
        optimizer state, counters, loss history and the best parameters."""
        meta = ckpt.meta
        for name, value in ckpt.params.items():
            self.params[name][...] = value
        try:
            self.optimizer.load_state_dict(ckpt.optim)
        except (KeyError, ValueError):
            raise DinogenError("the checkpoint's optimizer state is missing or damaged, so it cannot be resumed exactly.") from None
        self.state = RunState.from_meta(meta)
        if self.state.smooth_norm is None:  # recorded before the normaliser was
            self.state.smooth_norm = 1 - self.smooth_beta ** self.state.step
        if self.state.smooth_ema is None:  # recorded before the correction: take its value as the corrected one
            self.state.smooth_ema = self.state.smooth_loss * self.state.smooth_norm
        if ckpt.best is not None and self.state.best_val is not None:
            self.best = {k: v.copy() for k, v in ckpt.best.items()}
        else:
            self.state.best_val = None  # a record without its parameters keeps nothing

    def checkpoint(self) -> Checkpoint:
        """Everything needed to sample, evaluate and continue, as one Checkpoint.

        Raises Diverged rather than return weights that are not finite (an
        interrupted run reaches here without a final evaluation).
        """
        self.check_finite()
        meta = {
            "dinogen_version": __version__,
            "model": self.model_cfg.to_dict(),
            "vocab": list(self.vocab.chars),
            **self.run_data.category_table(),
            "lowercase": self.cfg.lowercase,
            "train": asdict(self.cfg),
            **self.state.to_meta(),
            "data": {
                "source": self.names.source,
                "names": len(self.data),
                "sha256": self.data_sha256,
                "val_names": len(self.val_idx),
            },
        }
        return Checkpoint(self.params, meta, self.best, self.optimizer.state_dict(), self.data)


def refit_config(trainer: Trainer) -> TrainConfig:
    """Settings that train again on every name, the validation names too, for as many
    epochs as made the best parameters of trainer's run, along a whole cosine schedule.
    No names are left to validate on, so the last parameters count."""
    best_step = trainer.best_val[0] if trainer.best_val else trainer.step
    scale = len(trainer.data) / len(trainer.train_idx)  # epochs, not steps, carry over to more names
    return replace(trainer.cfg, val_fraction=0.0, steps=max(1, round(REFIT_STRETCH * scale * best_step)),
                   max_seconds=None, patience=0, refit=False)
