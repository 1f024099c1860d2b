"""Where a training run stands, apart from its arrays: what a checkpoint's metadata
records and a resumed run takes up, and the rule that stops the run. RunState
converts itself to and from the metadata in one place (to_meta and from_meta are
each other's inverse), and RULES says what each field may be, for the checks of a
stranger's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dinogen.config import Rule, TrainConfig

RULES: dict[str, Rule] = {  # the metadata fields of a RunState that are numbers
    "step": Rule("the step", int, low=0),
    "predictions": Rule("the predictions", int, low=0),
    "stale_evals": Rule("the stale evaluations", int, low=0),
    "seconds": Rule("the seconds", float, low=0),
    "elapsed": Rule("the elapsed time", float, low=0),
    "smooth_loss": Rule("the smoothed loss", float),
    "smooth_ema": Rule("the smoothed loss's running sum", float),
    "smooth_norm": Rule("the smoothed loss's normaliser", float, low=0, high=1),
    "clock_led": Rule("whether the clock led", bool),
}


@dataclass
class RunState:
    step: int = 0  # steps done
    seconds: float = 0.0  # time spent in training steps
    elapsed: float = 0.0  # wall-clock time of the run so far, evaluations included: what --max-seconds limits
    predictions: int = 0  # real predictions trained on
    smooth_loss: float = 0.0  # the recent training loss: smooth_ema, corrected for its start at 0
    smooth_ema: float | None = 0.0  # moving average of the training loss started at 0 (None: not recorded)
    smooth_norm: float | None = 0.0  # the same average of 1s: what smooth_ema is divided by (None: not recorded)
    stale_evals: int = 0  # evaluations since the last new best
    train_history: list[tuple[int, float]] = field(default_factory=list)  # (step, smoothed loss) at each evaluation
    val_history: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    best_val: tuple[int, float] | None = None  # (step, loss) of the best parameters
    clock_led: bool = False  # the time limit, not the steps, set the learning rate at some step

    def record_validation(self, val: float | None) -> bool:
        """Record the validation loss at this step (and the smoothed training loss beside it);
        True when it is a new best, whose parameters the caller then keeps."""
        self.train_history.append((self.step, self.smooth_loss))
        if val is None:
            return False
        self.val_history.append((self.step, val))
        if self.best_val is None or val < self.best_val[1]:
            self.best_val, self.stale_evals = (self.step, val), 0
            return True
        self.stale_evals += 1
        return False

    def out_of_patience(self, cfg: TrainConfig) -> bool:
        return cfg.patience > 0 and self.stale_evals >= cfg.patience

    def why_stop(self, cfg: TrainConfig) -> str | None:
        """Why the run must stop now (steps, time, patience), or None to go on."""
        if self.step >= cfg.steps:
            return "steps"
        if cfg.max_seconds is not None and self.elapsed >= cfg.max_seconds:
            return "time"
        if self.out_of_patience(cfg):
            return "patience"
        return None

    def to_meta(self) -> dict:
        """The metadata fields of this state."""
        return {
            "step": self.step,
            "seconds": self.seconds,
            "elapsed": self.elapsed,
            "predictions": self.predictions,
            "smooth_loss": self.smooth_loss,
            "smooth_ema": self.smooth_ema,
            "smooth_norm": self.smooth_norm,
            "stale_evals": self.stale_evals,
            "history": {"train": self.train_history, "val": self.val_history},
            "best": {"step": self.best_val[0], "val_loss": self.best_val[1]} if self.best_val else None,
            "clock_led": self.clock_led,
        }

    @classmethod
    def from_meta(cls, meta: dict) -> "RunState":
        """The state a checkpoint's metadata records (checked on load by metadata_checks)."""
        best = meta.get("best")
        return cls(
            step=meta["step"],
            seconds=meta.get("seconds", 0.0),
            elapsed=meta.get("elapsed", 0.0),
            predictions=meta.get("predictions", 0),
            smooth_loss=meta["smooth_loss"],
            smooth_ema=meta.get("smooth_ema"),
            smooth_norm=meta.get("smooth_norm"),
            stale_evals=meta.get("stale_evals", 0),
            train_history=[tuple(x) for x in meta["history"]["train"]],
            val_history=[tuple(x) for x in meta["history"]["val"]],
            best_val=(best["step"], best["val_loss"]) if best else None,
            clock_led=meta.get("clock_led", False),
        )

