"""What a training run did, as one dict of numbers and words: what `train` prints at its end
and what scripts record. Losses are in nats per character."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dinogen.baselines import uniform_nll
from dinogen.run_data import spread

if TYPE_CHECKING:  # for the annotation only: train imports this module
    from dinogen.train import Trainer

TRAIN_SUBSET = 5000  # names of the training split used to report the final training loss


def summarise(trainer: "Trainer", seconds: float, steps_run: int | None = None) -> dict:
    """steps is the step reached, steps_run and seconds those of this run (less than the
    whole after a resume)."""
    state, run = trainer.state, trainer.run_data
    summary = {
        "steps": state.step,
        "steps_run": state.step if steps_run is None else steps_run,
        "seconds": round(seconds, 3),
        "chars_per_sec": round(trainer.chars_per_sec, 1),
        "train_loss": trainer.loss_on(spread(run.train_idx, TRAIN_SUBSET)),
        "smooth_loss": state.smooth_loss,
        "val_loss": state.val_history[-1][1] if state.val_history else None,
        "best_val_loss": state.best_val[1] if state.best_val else None,
        "best_step": state.best_val[0] if state.best_val else None,
        "stopped_early": trainer.stop_reason == "patience",
        "stop_reason": trainer.stop_reason,
        "clock_led": state.clock_led,
        "epochs": state.step * trainer.cfg.batch_size / max(len(run.train_idx), 1),
        "chosen": trainer.chosen,
        "uniform_loss": uniform_nll(run.vocab.size),
        "bigram_loss": run.bigram_loss(),
        "vocab_size": run.vocab.size,
        "train_names": len(run.train_idx),
        "val_names": len(run.val_idx),
        "val_probe_names": len(run.val_probe),
    }
    if run.category_names:  # a run of one list says nothing of categories, as before they existed
        summary["categories"] = {entry["name"]: entry["names"] for entry in run.category_table()["categories"]}
    return summary
