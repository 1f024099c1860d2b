"""Continuing training exactly, and refusing to continue what does not match."""

import numpy as np
import pytest
from click.testing import CliRunner

from dinogen import checkpoint
from dinogen.cli import main
from dinogen.data import NameList, read_names
from dinogen.errors import DinogenError, SettingsConflict
from dinogen.config import TrainConfig
from dinogen.resume import resume
from dinogen.train import Trainer

from conftest import BUNDLED_NAMES

NAMES = read_names(BUNDLED_NAMES)


def trained(cfg, stop_at=None):
    trainer = Trainer(NAMES, cfg)
    trainer.run(should_stop=None if stop_at is None else (lambda: trainer.step >= stop_at))
    return trainer


def reloaded(trainer, tmp_path):
    path = tmp_path / "half.npz"
    checkpoint.save(path, trainer.checkpoint())
    return checkpoint.load(path)


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_n_steps_then_resume_n_more_equals_2n_steps_bit_for_bit(tmp_path):
    base = dict(hidden=24, batch_size=16, eval_every=7, schedule="constant")
    whole = trained(TrainConfig(steps=60, **base))
    half = trained(TrainConfig(steps=30, **base))
    continued, _ = resume(NAMES, reloaded(half, tmp_path), {"steps": 60})
    continued.run()
    assert continued.step == 60
    assert_same_params(whole.params, continued.params)
    assert_same_params(whole.optimizer.state_dict(), continued.optimizer.state_dict())
    assert continued.smooth_loss == whole.smooth_loss


def test_an_interrupted_run_resumes_bit_for_bit_with_schedule_and_dropout(tmp_path):
    cfg = TrainConfig(cell="gru", hidden=16, embed_dim=8, dropout=0.3, steps=50, batch_size=16, eval_every=10)
    whole = trained(cfg)
    interrupted = trained(cfg, stop_at=23)
    assert interrupted.step == 23
    continued, _ = resume(NAMES, reloaded(interrupted, tmp_path), {})
    continued.run()
    assert_same_params(whole.params, continued.params)
    assert continued.best_val == whole.best_val


def test_resume_reports_the_settings_that_changed(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=5))
    continued, changed = resume(NAMES, reloaded(half, tmp_path), {"steps": 9, "lr": 1e-3, "hidden": 8})
    assert ("lr", 3e-3, 1e-3) in changed and ("steps", 5, 9) in changed
    assert continued.cfg.lr == 1e-3


@pytest.mark.parametrize("change, message", [({"hidden": 16}, "--hidden"), ({"cell": "gru"}, "--cell"),
                                             ({"seed": 2}, "--seed"), ({"val_fraction": 0.2}, "--val-fraction")])
def test_resume_refuses_settings_that_contradict_the_checkpoint(tmp_path, change, message):
    half = trained(TrainConfig(hidden=8, steps=5))
    with pytest.raises(SettingsConflict, match=message):
        resume(NAMES, reloaded(half, tmp_path), {"steps": 10, **change})


def test_a_flag_the_resumed_settings_cannot_take_is_a_usage_error_as_in_a_fresh_run(tmp_path):
    from click.testing import CliRunner

    from dinogen.cli import main

    out = tmp_path / "all.npz"
    checkpoint.save(out, trained(TrainConfig(hidden=8, steps=5, val_fraction=0.0)).checkpoint())
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(out), "-o", str(out),
                                       "--steps", "10", "--patience", "3"])
    assert result.exit_code == 2 and "--patience needs validation names" in result.stderr


def test_resume_refuses_other_data(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=5))
    other = NameList(NAMES.names[:-1], NAMES.line_numbers[:-1], "other.txt")
    with pytest.raises(DinogenError, match="not the data"):
        resume(other, reloaded(half, tmp_path), {"steps": 10})


def test_other_data_is_said_before_anything_about_the_steps(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=5))
    other = NameList(NAMES.names[:-1], NAMES.line_numbers[:-1], "other.txt")
    with pytest.raises(DinogenError, match="not the data"):
        resume(other, reloaded(half, tmp_path), {})  # no more steps asked for either


def test_a_resume_without_out_continues_in_the_checkpoint_it_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = ["train", str(BUNDLED_NAMES), "--hidden", "8", "-q"]
    assert CliRunner().invoke(main, [*first, "--steps", "5"]).exit_code == 0  # ./dinogen.npz, another model
    other = tmp_path / "other.npz"
    assert CliRunner().invoke(main, [*first, "--steps", "5", "--seed", "7", "-o", str(other)]).exit_code == 0
    before = (tmp_path / "dinogen.npz").read_bytes()
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(other), "--steps", "8", "-q"])
    assert result.exit_code == 0
    assert checkpoint.load(other).meta["step"] == 8
    assert (tmp_path / "dinogen.npz").read_bytes() == before


def test_a_library_caller_may_resume_with_a_plain_list_of_names(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=5))
    trainer, _ = resume(list(NAMES.names), reloaded(half, tmp_path), {"steps": 8})
    trainer.run()
    assert trainer.step == 8


def test_a_resume_that_cannot_write_back_to_its_checkpoint_asks_for_out(tmp_path):
    run = tmp_path / "run12.npz"
    assert CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--hidden", "8", "--steps", "5", "-q",
                                     "-o", str(run)]).exit_code == 0
    (tmp_path / "latest.npz").symlink_to(run)
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(tmp_path / "latest.npz"),
                                       "--steps", "8", "-q"])
    assert result.exit_code == 2
    assert "is a symbolic link" in result.stderr and "give -o PATH" in result.stderr


def test_resume_needs_more_total_steps_than_done(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=5))
    with pytest.raises(DinogenError, match="already trained 5 steps"):
        resume(NAMES, reloaded(half, tmp_path), {})


def test_an_interrupt_does_not_evaluate_off_schedule_so_patience_resumes_exactly(tmp_path):
    cfg = TrainConfig(hidden=16, steps=300, batch_size=16, eval_every=30, patience=1, lr=2e-2)
    whole = trained(cfg)
    interrupted = trained(cfg, stop_at=157)
    assert interrupted.val_history[-1][0] == 150  # no evaluation at step 157
    continued, _ = resume(NAMES, reloaded(interrupted, tmp_path), {})
    continued.run()
    assert (continued.step, continued.best_val, continued.stale_evals) == (whole.step, whole.best_val, whole.stale_evals)
    assert_same_params(whole.params, continued.params)


def test_max_seconds_counts_the_whole_run_across_a_resume(tmp_path):
    cfg = TrainConfig(hidden=8, steps=10**6, max_seconds=1000.0, batch_size=16, eval_every=10**5)
    half = trained(cfg, stop_at=3)
    saved = reloaded(half, tmp_path)
    assert saved.meta["elapsed"] == half.elapsed > 0
    saved.meta["elapsed"] = 600.0  # as if 600 of the 1000 seconds were spent
    continued, _ = resume(NAMES, saved, {})
    continued.run(should_stop=lambda: continued.step >= 4)
    assert continued.elapsed > 600.0
    assert continued.optimizer.lr < 0.5 * cfg.lr  # the cosine continues past its middle, it does not restart


def test_resume_needs_more_total_seconds_than_spent(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=10**6, max_seconds=1000.0), stop_at=2)
    saved = reloaded(half, tmp_path)
    saved.meta["elapsed"] = 1000.0
    with pytest.raises(DinogenError, match="--max-seconds counts the whole run"):
        resume(NAMES, saved, {})


def test_dropout_may_change_on_resume(tmp_path):
    half = trained(TrainConfig(hidden=8, embed_dim=4, dropout=0.3, steps=5))
    continued, changed = resume(NAMES, reloaded(half, tmp_path), {"steps": 8, "dropout": 0.1})
    continued.run()
    assert ("dropout", 0.3, 0.1) in changed and continued.step == 8


def test_a_checkpoint_without_its_step_or_history_cannot_be_resumed(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=5))
    ckpt = half.checkpoint()
    del ckpt.meta["step"], ckpt.meta["history"]
    path = tmp_path / "hand-made.npz"
    checkpoint.save(path, ckpt)
    with pytest.raises(DinogenError, match="does not record its step, history, so it cannot be resumed"):
        resume(NAMES, checkpoint.load(path), {"steps": 10})


def test_a_library_run_that_folds_case_resumes_from_the_names_as_written(tmp_path):
    cfg = TrainConfig(hidden=8, steps=8, lowercase=True)  # NAMES keep their capitals; the Trainer folds them
    half = trained(cfg, stop_at=4)
    continued, _ = resume(NAMES, reloaded(half, tmp_path), {})
    continued.run()
    assert continued.step == 8 and set(continued.vocab.chars) == set("".join(NAMES.names).lower())


def test_a_checkpoint_whose_steps_were_left_to_the_recipe_resumes_with_them_chosen(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=6))
    saved = reloaded(half, tmp_path)
    saved.meta["train"]["steps"] = None  # as a library caller might seal it: chosen for the list on resume
    continued, _ = resume(NAMES, saved, {})
    assert continued.cfg.steps is not None and continued.step == 6


def test_a_finished_first_run_of_preset_best_resumes_into_its_refit(tmp_path):
    first = trained(TrainConfig(hidden=8, steps=6, refit=True))
    continued, _ = resume(NAMES, reloaded(first, tmp_path), {})
    assert continued.refits and continued.run()["steps"] == 6  # stops at once; the CLI then refits


def test_the_smoothed_loss_stays_honest_across_a_resume_that_changes_the_steps(tmp_path):
    half = trained(TrainConfig(hidden=8, steps=200, batch_size=16, eval_every=50))
    continued, _ = resume(NAMES, reloaded(half, tmp_path), {"steps": 2000})
    losses = []
    continued.run(on_progress=lambda p: losses.append(p.loss), should_stop=lambda: continued.step >= 250)
    assert abs(continued.smooth_loss - np.mean(losses[-20:])) < 0.15  # not inflated by the new smoothing window


def test_a_checkpoint_from_before_the_smoothed_loss_had_its_parts_resumes_from_its_smoothed_loss(tmp_path):
    half = trained(TrainConfig(steps=10, hidden=8, batch_size=16, eval_every=5))
    ckpt = reloaded(half, tmp_path)
    del ckpt.meta["smooth_ema"], ckpt.meta["smooth_norm"]
    continued, _ = resume(NAMES, ckpt, {"steps": 20})
    assert continued.state.smooth_ema / continued.state.smooth_norm == pytest.approx(half.smooth_loss)
    continued.run()
    assert continued.step == 20 and np.isfinite(continued.smooth_loss)
