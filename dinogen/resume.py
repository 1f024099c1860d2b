"""Continuing a saved run exactly: the settings it may and may not change, and the checks first."""

from __future__ import annotations

from dataclasses import fields, replace

from dinogen.checkpoint import Checkpoint
from dinogen.config import TrainConfig
from dinogen.data import NameList, as_name_list
from dinogen.errors import DinogenError, SettingsConflict, shown
from dinogen.train import Trainer

# Settings a resumed run must share with its checkpoint (the rest may change).
FIXED_ON_RESUME = ("cell", "hidden", "layers", "embed_dim", "lowercase", "seed", "val_fraction", "optimizer")


def resume(names: NameList, ckpt: Checkpoint, changes: dict) -> tuple[Trainer, list[tuple[str, object, object]]]:
    """A Trainer that continues the run saved in ckpt exactly where it stopped.

    changes holds the settings given again (None = keep); those in FIXED_ON_RESUME
    must agree with the checkpoint. Returns the trainer and the (name, old, new)
    settings that changed. Same data, same settings: the parameters after resuming
    are bit-identical to those of one uninterrupted run.

    A finished first run of --preset best (refit set) resumes too: it stops at
    once, and the refit follows, so a Ctrl-C between the two stages loses nothing.
    """
    names = as_name_list(names)  # a library caller may pass a list of strings, as to a Trainer
    missing = [key for key in ("train", "step", "smooth_loss", "history") if key not in ckpt.meta]
    if missing:
        raise DinogenError(f"the checkpoint does not record its {', '.join(missing)}, so it cannot be resumed; "
                           "train a new model.")
    cfg, changed = _resumed_config(ckpt.meta["train"], changes)
    trainer = Trainer(names, cfg)  # checks the settings (SettingsConflict) and resolves any left to the recipe
    if trainer.data_sha256 != ckpt.meta.get("data", {}).get("sha256"):  # the names as the Trainer keeps them
        raise DinogenError(  # first: no other advice helps with other names
            f"{names.source} is not the data this checkpoint was trained on "
            f"({shown(str(ckpt.meta.get('data', {}).get('source')))}); "
            "resume with the same file, read the same way (--encoding, --max-name-length), or train a new model."
        )
    if not trainer.refits:
        _check_resumable(ckpt, trainer.cfg)
    if trainer.vocab != ckpt.vocab or replace(trainer.model_cfg, dropout=ckpt.model_config.dropout) != ckpt.model_config:
        raise DinogenError("the checkpoint's vocabulary or model does not match this data; train a new model.")
    trainer.restore(ckpt)
    return trainer, changed


def _resumed_config(saved_values: dict, changes: dict) -> tuple[TrainConfig, list[tuple[str, object, object]]]:
    """The saved settings with the changes applied, and the (name, old, new) that changed."""
    known = {f.name for f in fields(TrainConfig)}
    saved = TrainConfig(**{"workers": 1, **{k: v for k, v in saved_values.items() if k in known}})  # 1: before --workers
    given = {k: v for k, v in changes.items() if v is not None}
    for key in FIXED_ON_RESUME:
        if key in given and given[key] != getattr(saved, key):
            flag = "--" + key.replace("_", "-")
            raise SettingsConflict(
                f"{_as_flag(flag, given[key])} contradicts the checkpoint, which was trained with "
                f"{_as_flag(flag, getattr(saved, key))}; "
                f"drop {flag} to resume, or train a new model without --resume."
            )
    changed = [(k, getattr(saved, k), v) for k, v in given.items() if getattr(saved, k) != v]
    return replace(saved, **given), changed


def _as_flag(flag: str, value) -> str:
    """A setting as the flag that gives it: "--lowercase" or "no --lowercase", "--hidden 256"."""
    if isinstance(value, bool):
        return flag if value else f"no {flag}"
    return f"{flag} {value}"


def _check_resumable(ckpt: Checkpoint, cfg: TrainConfig) -> None:
    """Raise DinogenError unless ckpt holds a run with steps or time left under cfg."""
    meta = ckpt.meta
    if cfg.steps <= meta["step"]:
        raise DinogenError(
            f"the checkpoint has already trained {meta['step']} steps; --steps counts total steps, so ask for more."
        )
    elapsed = meta.get("elapsed", 0.0)
    if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
        raise DinogenError(
            f"the checkpoint has already trained for {elapsed:.3g} s; --max-seconds counts the whole run, so ask for more."
        )

