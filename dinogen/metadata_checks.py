"""Checking a checkpoint's metadata: the JSON that says what its arrays are.

Every check returns a phrase saying what is wrong ("its step is -3, expected a
whole number of at least 0"), or None; the checkpoint loader makes it one
sentence. Fields that older or slim files lack stay optional, but a field that
is present must have the form the trainer writes, since `info`, sampling and
resuming read it as such.
"""

from __future__ import annotations

import json

from dinogen.config import RULES, TRAIN_SETTINGS, ModelConfig, is_finite_number, problems_of
from dinogen.errors import shown
from dinogen.run_state import RULES as RUN_STATE_RULES


def shown_value(value) -> str:
    """A metadata value as JSON, cut short: for messages."""
    text = shown(json.dumps(value, ensure_ascii=False, default=str))  # DEL and C1 too, which JSON leaves
    return text if len(text) <= 40 else text[:39] + "…"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite int or float (JSON also reads NaN and Infinity)."""
    return is_finite_number(value)


def _count_ok(value) -> bool:
    return _is_int(value) and value >= 0


def model_problem(cfg: ModelConfig) -> str | None:
    """What is wrong with the model description, or None: the ranges training accepts (config.RULES)."""
    model = cfg.to_dict()
    wrong = problems_of(model) or (("dropout", RULES["dropout"].range_name()) if cfg.dropout is None else None)
    if wrong:  # a model's dropout is a number: None is a training setting's "chosen for the list"
        name, expected = wrong
        return f"its model's {name} is {shown_value(model[name])}, expected {expected}"
    return None


def meta_problem(meta: dict) -> str | None:
    """What is wrong with the metadata besides the model and vocabulary, or None.

    Every field is optional (a hand-made or older file may lack it; resuming
    needs step, smooth_loss and history), but one that is present must have the
    form the trainer writes, since `info`, sampling and resuming read it as such.
    """
    if "lowercase" in meta and not isinstance(meta["lowercase"], bool):
        return f"its lowercase flag is {shown_value(meta['lowercase'])}, expected true or false"
    wrong = problems_of({k: v for k, v in meta.items() if k in RUN_STATE_RULES}, rules=RUN_STATE_RULES)
    if wrong:  # the whole rule, type and range: "a whole number of at least 0"
        name, _ = wrong
        return f"its {name} is {shown_value(meta[name])}, expected {RUN_STATE_RULES[name].range_name()}"
    return _history_problem(meta) or _best_problem(meta) or _train_problem(meta) or _data_problem(meta)


def _history_problem(meta: dict) -> str | None:
    if "history" not in meta:
        return None
    history = meta["history"]
    if not isinstance(history, dict) or not all(isinstance(history.get(key), list) for key in ("train", "val")):
        return f"its loss history is {shown_value(history)}, expected an object with train and val lists"
    for key in ("train", "val"):
        for entry in history[key]:
            if not (isinstance(entry, list) and len(entry) == 2 and _count_ok(entry[0]) and _is_number(entry[1])):
                return (f"its {key} loss history holds {shown_value(entry)}, "
                        "expected [step, loss] pairs of a whole number and a finite loss")
    return None


def _best_problem(meta: dict) -> str | None:
    best = meta.get("best")
    if best is None:
        return None
    if not (isinstance(best, dict) and _count_ok(best.get("step")) and _is_number(best.get("val_loss"))):
        return (f"its best-validation record is {shown_value(best)}, "
                "expected null or an object with a whole-number step and a finite val_loss")
    return None


def _train_problem(meta: dict) -> str | None:
    """The training settings: an object whose known settings each keep their rule in
    config.RULES (resuming rebuilds a TrainConfig from them); settings of other
    versions are ignored."""
    if "train" not in meta:
        return None
    train = meta["train"]
    if not isinstance(train, dict):
        return f"its training settings are {shown_value(train)}, expected an object"
    wrong = problems_of({k: v for k, v in train.items() if k in TRAIN_SETTINGS})
    if wrong:
        name, expected = wrong
        return f"its training setting {name} is {shown_value(train[name])}, expected {expected}"
    return None


def _data_problem(meta: dict) -> str | None:
    if "data" not in meta:
        return None
    data = meta["data"]
    if not isinstance(data, dict):
        return f"its data description is {shown_value(data)}, expected an object"
    for key in ("names", "val_names"):
        if key in data and not _count_ok(data[key]):
            return f"its data's {key} is {shown_value(data[key])}, expected a whole number of at least 0"
    for key in ("source", "sha256"):
        if key in data and not isinstance(data[key], str):
            return f"its data's {key} is {shown_value(data[key])}, expected a string"
    return None

