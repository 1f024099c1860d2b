"""Checkpoint metadata and optimizer state: malformed files are refused at load, in one sentence.

Every damaged file here is sealed by checkpoint.save, so its checksum is valid
and only the checks of the contents stand between it and a traceback later.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dinogen import checkpoint
from dinogen.cli import main
from dinogen.errors import DinogenError
from dinogen.resources import bundled_model

from conftest import BUNDLED_NAMES


def resealed(src, dst, change):
    """Load a good checkpoint, let change(ckpt) damage it, and save it the normal way."""
    ckpt = checkpoint.load(src)
    change(ckpt)
    checkpoint.save(dst, ckpt)
    return dst


def refused(path, message):
    with pytest.raises(DinogenError, match=message) as caught:
        checkpoint.load(path)
    text = str(caught.value)
    assert text.startswith(f"{path} is not a valid dinogen checkpoint: ") and text.endswith(".")
    assert "\n" not in text
    return text


def test_the_bundled_model_loads_without_optimizer_state_or_best_parameters():
    ckpt = checkpoint.load(bundled_model())
    assert ckpt.optim == {} and ckpt.best is None and ckpt.meta["best"] is None


def test_a_checkpoint_without_optimizer_state_still_loads(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "slim.npz", lambda c: c.optim.clear())
    assert checkpoint.load(path).optim == {}


def test_metadata_with_only_the_model_and_vocabulary_still_loads(small_checkpoint, tmp_path):
    def strip(ckpt):
        ckpt.meta = {"model": ckpt.meta["model"], "vocab": ckpt.meta["vocab"]}

    path = resealed(small_checkpoint, tmp_path / "bare.npz", strip)
    assert checkpoint.load(path).meta.keys() >= {"model", "vocab"}


@pytest.mark.parametrize("change", [
    {"layers": 0}, {"layers": 4}, {"hidden": 0}, {"hidden": "32"}, {"embed_dim": -1},
    {"dropout": 1.0}, {"dropout": -0.1}, {"cell": "transformer"},
])
def test_a_model_outside_the_ranges_training_accepts_is_refused(small_checkpoint, tmp_path, change):
    path = resealed(small_checkpoint, tmp_path / "model.npz", lambda c: c.meta["model"].update(change))
    name = next(iter(change))
    refused(path, f"its model's {name} is .*, expected")


@pytest.mark.parametrize("damage", ["repeat", "swap", "surrogate"])
def test_a_vocabulary_that_is_not_sorted_distinct_characters_is_refused(small_checkpoint, tmp_path, damage):
    def change(ckpt):
        vocab = ckpt.meta["vocab"]
        if damage == "repeat":
            vocab[1] = vocab[0]
        elif damage == "swap":
            vocab[0], vocab[1] = vocab[1], vocab[0]
        else:
            vocab[-1] = "\udfff"  # a lone surrogate sorts last, but is no character

    refused(resealed(small_checkpoint, tmp_path / "vocab.npz", change), "not a sorted list of distinct characters")


def test_a_loss_history_too_wide_for_a_float_still_draws(small_checkpoint, tmp_path):
    def change(ckpt):
        ckpt.meta["history"] = {"train": [[1, -1e308]], "val": [[1, 1e308]]}

    result = CliRunner().invoke(main, ["info", str(resealed(small_checkpoint, tmp_path / "wide.npz", change))])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("step", [-1, 2.5, "300", True, None])
def test_a_step_that_is_not_a_whole_number_of_at_least_0_is_refused(small_checkpoint, tmp_path, step):
    path = resealed(small_checkpoint, tmp_path / "step.npz", lambda c: c.meta.update(step=step))
    refused(path, "its step is .*, expected a whole number of at least 0")


@pytest.mark.parametrize("field, value", [
    ("seconds", -1.0), ("elapsed", "long"), ("predictions", 1.5), ("stale_evals", -2), ("smooth_loss", float("nan")),
])
def test_counters_times_and_the_smoothed_loss_of_the_wrong_kind_are_refused(small_checkpoint, tmp_path, field, value):
    path = resealed(small_checkpoint, tmp_path / "counter.npz", lambda c: c.meta.update({field: value}))
    refused(path, f"its {field} is .*, expected")


@pytest.mark.parametrize("history", [[], None, {"train": []}, {"train": [], "val": None}])
def test_a_loss_history_without_train_and_val_lists_is_refused(small_checkpoint, tmp_path, history):
    path = resealed(small_checkpoint, tmp_path / "history.npz", lambda c: c.meta.update(history=history))
    refused(path, "its loss history is .*, expected an object with train and val lists")


@pytest.mark.parametrize("entry", [[100, 2.5, 7], [100], 100, [100, "low"], [1.5, 2.5], [-1, 2.5], [100, float("inf")]])
def test_history_entries_that_are_not_step_loss_pairs_are_refused(small_checkpoint, tmp_path, entry):
    path = resealed(small_checkpoint, tmp_path / "pairs.npz", lambda c: c.meta["history"]["val"].append(entry))
    refused(path, r"its val loss history holds .*, expected \[step, loss\] pairs")


@pytest.mark.parametrize("best", [{"step": 100}, {"val_loss": 2.0}, {"step": "100", "val_loss": 2.0},
                                  {"step": 100, "val_loss": None}, [100, 2.0], 0])
def test_a_best_record_without_a_step_and_a_finite_val_loss_is_refused(small_checkpoint, tmp_path, best):
    path = resealed(small_checkpoint, tmp_path / "best.npz", lambda c: c.meta.update(best=best))
    refused(path, "its best-validation record is .*, expected null or an object")


def test_a_null_best_record_is_accepted(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "nobest.npz", lambda c: c.meta.update(best=None))
    assert checkpoint.load(path).meta["best"] is None


@pytest.mark.parametrize("train", [[1], None, "adam"])
def test_training_settings_that_are_not_an_object_are_refused(small_checkpoint, tmp_path, train):
    path = resealed(small_checkpoint, tmp_path / "train.npz", lambda c: c.meta.update(train=train))
    refused(path, "its training settings are .*, expected an object")


@pytest.mark.parametrize("setting, value, expected", [
    ("lr", "fast", "a finite number"), ("steps", 2.5, "a whole number or null"),
    ("max_seconds", "1m", "a finite number or null"), ("lowercase", "yes", "true or false"),
    ("optimizer", None, "a string"), ("seed", True, "a whole number"),
])
def test_a_training_setting_of_the_wrong_type_is_refused(small_checkpoint, tmp_path, setting, value, expected):
    path = resealed(small_checkpoint, tmp_path / "setting.npz", lambda c: c.meta["train"].update({setting: value}))
    refused(path, f"its training setting {setting} is .*, expected {expected};")


def test_training_settings_unknown_to_this_version_are_ignored(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "future.npz", lambda c: c.meta["train"].update(warmup=[1, 2]))
    assert checkpoint.load(path).meta["train"]["warmup"] == [1, 2]


@pytest.mark.parametrize("data, message", [
    (None, "its data description is null, expected an object"),
    ([], r"its data description is \[\], expected an object"),
    ({"names": "many"}, "its data's names is \"many\", expected a whole number"),
    ({"sha256": 7}, "its data's sha256 is 7, expected a string"),
])
def test_a_malformed_data_description_is_refused(small_checkpoint, tmp_path, data, message):
    def damage(ckpt):
        ckpt.meta["data"] = dict(ckpt.meta["data"], **data) if isinstance(data, dict) else data

    refused(resealed(small_checkpoint, tmp_path / "data.npz", damage), message)


def test_a_lowercase_flag_that_is_not_a_boolean_is_refused(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "case.npz", lambda c: c.meta.update(lowercase="no"))
    refused(path, "its lowercase flag is \"no\", expected true or false")


def test_adam_moments_of_the_wrong_shape_are_refused(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "m.npz", lambda c: c.optim.update({"m/b_y": np.zeros(1, np.float32)}))
    refused(path, r"optim/m/b_y has shape \(1,\) and dtype float32, expected \(\d+,\) float32 like param/b_y")


def test_adam_moments_of_another_dtype_than_their_parameter_are_refused(small_checkpoint, tmp_path):
    def widen(ckpt):
        ckpt.optim["v/W_hh.0"] = ckpt.optim["v/W_hh.0"].astype(np.float64)

    refused(resealed(small_checkpoint, tmp_path / "v.npz", widen), r"optim/v/W_hh.0 has shape .* dtype float64")


def test_a_missing_adam_moment_is_refused(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "gone.npz", lambda c: c.optim.pop("v/W_hy"))
    refused(path, "its optimizer state lacks optim/v/W_hy")


@pytest.mark.parametrize("t", [np.array(300.0), np.array([300]), np.array("300")])
def test_an_optimizer_step_count_that_is_not_a_single_integer_is_refused(small_checkpoint, tmp_path, t):
    path = resealed(small_checkpoint, tmp_path / "t.npz", lambda c: c.optim.update(t=t))
    refused(path, "optim/t has shape .*, expected a single integer")


@pytest.mark.parametrize("t", [np.array(-1, dtype=np.int64), np.array(2**63, dtype=np.uint64)])
def test_an_optimizer_step_count_out_of_range_is_refused(small_checkpoint, tmp_path, t):
    path = resealed(small_checkpoint, tmp_path / "t.npz", lambda c: c.optim.update(t=t))
    refused(path, f"optim/t is {int(t)}, expected a step count of at least 0")


@pytest.mark.parametrize("key, value, message", [
    ("m/b_y", np.nan, "NaN or infinite"), ("v/b_y", np.inf, "NaN, infinite or negative"), ("v/b_y", -1.0, "negative"),
])
def test_adam_moments_that_are_not_finite_or_have_negative_second_moments_are_refused(
        small_checkpoint, tmp_path, key, value, message):
    def damage(ckpt):
        ckpt.optim[key] = ckpt.optim[key].copy()
        ckpt.optim[key][0] = value

    refused(resealed(small_checkpoint, tmp_path / "moments.npz", damage), f"optim/{key} holds .*{message}")


def one_error_line(result):
    assert result.exit_code == 1 and result.stdout == ""
    assert isinstance(result.exception, SystemExit)  # a ClickException, not an escaped error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.stderr
    return lines[0]


def test_info_on_a_checkpoint_with_malformed_history_prints_one_sentence_and_exits_1(small_checkpoint, tmp_path):
    bad = resealed(small_checkpoint, tmp_path / "bad.npz", lambda c: c.meta["history"]["train"].append([1, 2, 3]))
    line = one_error_line(CliRunner().invoke(main, ["info", str(bad)]))
    assert "its train loss history holds [1, 2, 3]" in line and line.endswith("retrain or pass another file.")


def test_resuming_from_a_checkpoint_with_a_malformed_best_record_prints_one_sentence_and_exits_1(
        small_checkpoint, tmp_path):
    bad = resealed(small_checkpoint, tmp_path / "bad.npz", lambda c: c.meta.update(best={"step": 100}))
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(bad), "--steps", "400", "-q",
                                       "-o", str(tmp_path / "out.npz")])
    assert "its best-validation record is" in one_error_line(result)
    assert not (tmp_path / "out.npz").exists()



@pytest.mark.parametrize("setting, value", [("seed", -5), ("hidden", 0), ("lr", 0.0), ("batch_size", -1),
                                            ("val_fraction", 1.5), ("schedule", "sometimes"), ("dropout", 1.0),
                                            ("workers", 100_000)])
def test_a_training_setting_outside_the_range_the_flags_accept_is_refused(small_checkpoint, tmp_path, setting, value):
    path = resealed(small_checkpoint, tmp_path / "range.npz", lambda c: c.meta["train"].update({setting: value}))
    refused(path, f"its training setting {setting} is .*, expected")
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(path), "-o", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.stderr and "expected" in result.stderr


@pytest.mark.parametrize("change", [
    lambda m: m["train"].update(lr=10**400), lambda m: m.update(seconds=10**400),
    lambda m: m["history"]["val"].append([1, 10**400]), lambda m: m.update(clock_led="yes"),
    lambda m: m.update(smooth_ema=float("nan")),
], ids=["huge-lr", "huge-seconds", "huge-loss", "clock-led-not-bool", "nan-ema"])
def test_a_number_no_float_holds_or_a_wrong_flag_is_refused_not_a_traceback(small_checkpoint, tmp_path, change):
    path = resealed(small_checkpoint, tmp_path / "huge.npz", lambda c: change(c.meta))
    refused(path, "expected")
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.stderr


def test_info_shows_terminal_escapes_from_a_checkpoint_as_text_never_raw(small_checkpoint, tmp_path):
    path = resealed(small_checkpoint, tmp_path / "escapes.npz",
                    lambda c: c.meta["data"].update(source="\x1b]0;pwned\x07\x1b[2J\x9b2Jnames.txt"))
    for args in (["info", str(path)], ["info", str(path), "--json"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0
        assert not any(ch in result.stdout for ch in "\x1b\x07\x9b")
    assert json.loads(CliRunner().invoke(main, ["info", str(path), "--json"]).stdout)["data"]["source"].startswith("\x1b]0")
    assert "\\x1b]0;pwned\\x07" in CliRunner().invoke(main, ["info", str(path)]).stdout


def test_a_vocabulary_with_a_control_character_is_refused(small_checkpoint, tmp_path):
    def change(ckpt):
        ckpt.meta["vocab"] = sorted(ckpt.meta["vocab"][:-1] + ["\x1b"])

    refused(resealed(small_checkpoint, tmp_path / "esc.npz", change), "control character")
