"""The default recipe: the length, the regularisation and the stopping rule chosen from the list's size."""

import numpy as np
import pytest

from dinogen import checkpoint, recipe
from dinogen.data import NameList
from dinogen.config import DEFAULT_MAX_SECONDS, TrainConfig
from dinogen.resume import resume
from dinogen.train import Trainer, refit_config

# 320 made-up names that a small RNN at a high learning rate learns within a few hundred steps, then over-fits.
NAMES = NameList([f"{a}{b}{c}" for a in "abcdefgh" for b in "aeiou" for c in "klmnprst"], list(range(1, 321)), "t")
QUICK = dict(cell="rnn", hidden=32, embed_dim=0, dropout=0.0, weight_decay=0.0, batch_size=16, lr=3e-2,
             eval_every=10)


def run(stop_at=None, **settings):
    trainer = Trainer(NAMES, TrainConfig(**{**QUICK, **settings}))
    trainer.run(should_stop=None if stop_at is None else (lambda: trainer.step >= stop_at))
    return trainer


@pytest.fixture(scope="module")
def whole():
    """A run whose length was chosen for the list and that stopped on a plateau."""
    return run()


def test_dropout_falls_with_the_list_size_from_the_small_to_the_large_setting():
    sizes = [100, recipe.SMALL_LIST, 5_000, 12_000, recipe.LARGE_LIST, 10**6]
    dropouts = [recipe.dropout_for(n) for n in sizes]
    assert dropouts[0] == dropouts[1] == recipe.DROPOUT_SMALL
    assert dropouts[-2] == dropouts[-1] == recipe.DROPOUT_LARGE
    assert dropouts == sorted(dropouts, reverse=True) and len(set(dropouts[1:5])) == 4


def test_larger_lists_get_fewer_epochs_but_more_steps():
    sizes = [1_300, 5_000, 26_000, 80_000]
    epochs = [recipe.epochs_for(n) for n in sizes]
    steps = [recipe.steps_for(n, recipe.batch_size_for(n)) for n in sizes]
    assert epochs[0] == pytest.approx(recipe.EPOCHS_SMALL)
    assert epochs == sorted(epochs, reverse=True) and steps == sorted(steps)
    assert epochs[-1] == pytest.approx(recipe.EPOCHS_SMALL * (80_000 / recipe.REFERENCE) ** -recipe.EPOCHS_POWER)
    assert all(s % 50 == 0 for s in steps)


def test_batches_grow_and_evaluations_follow_the_epoch_within_their_range():
    assert recipe.batch_size_for(recipe.LARGE_BATCH_FROM - 1) == 32
    assert recipe.batch_size_for(recipe.LARGE_BATCH_FROM) == 64
    assert recipe.eval_every_for(1_300, 32) == 100  # 41 steps an epoch: the floor
    assert recipe.eval_every_for(27_000, 64) == 200  # 422 steps an epoch: about two evaluations each
    assert recipe.eval_every_for(80_000, 64) == 500  # 1,250 steps an epoch: the ceiling


def test_patience_is_a_fifth_of_the_planned_run():
    assert recipe.patience_for(3_000, 100) == 6
    assert recipe.patience_for(200, 100) == recipe.MIN_PATIENCE


def test_settings_left_unset_are_chosen_for_the_list_and_given_ones_are_kept():
    unset = dict(QUICK, dropout=None, batch_size=None, eval_every=None)
    cfg = Trainer(NAMES, TrainConfig(**unset)).cfg
    n_train = 288  # 320 names, 10% held out
    assert (cfg.dropout, cfg.batch_size) == (recipe.dropout_for(320), recipe.batch_size_for(320))
    assert cfg.eval_every == recipe.eval_every_for(n_train, cfg.batch_size)
    assert cfg.steps == recipe.steps_for(n_train, cfg.batch_size)
    assert cfg.patience == recipe.patience_for(cfg.steps, cfg.eval_every)
    kept = Trainer(NAMES, TrainConfig(**QUICK, steps=70, patience=2)).cfg
    assert (kept.dropout, kept.batch_size, kept.eval_every, kept.steps, kept.patience) == (0.0, 16, 10, 70, 2)


def test_a_chosen_length_runs_under_a_ten_minute_limit():
    assert Trainer(NAMES, TrainConfig(**QUICK)).cfg.max_seconds == DEFAULT_MAX_SECONDS == 600


def test_given_steps_fix_the_length_exactly_with_no_time_limit_and_no_patience():
    trainer = Trainer(NAMES, TrainConfig(**QUICK, steps=30))
    assert (trainer.cfg.max_seconds, trainer.cfg.patience) == (None, 0)
    assert trainer.run()["steps"] == 30 and trainer.stop_reason == "steps"


def test_the_run_stops_by_itself_on_a_plateau_and_keeps_the_best(whole):
    assert whole.stop_reason == "patience" and whole.step < whole.cfg.steps
    best_step, best_loss = whole.best_val
    later = [loss for step, loss in whole.val_history if step > best_step]
    assert len(later) == whole.cfg.patience and min(later) >= best_loss
    assert best_loss == min(loss for _, loss in whole.val_history)
    assert whole.loss_on(whole.val_probe, whole.best) == pytest.approx(best_loss)


def test_a_resumed_run_stops_at_the_same_step_with_the_same_parameters(whole, tmp_path):
    interrupted = run(stop_at=whole.best_val[0] + 3)  # off the evaluations, after the best
    path = tmp_path / "half.npz"
    checkpoint.save(path, interrupted.checkpoint())
    continued, _ = resume(NAMES, checkpoint.load(path), {})
    continued.run()
    assert (continued.step, continued.stop_reason, continued.best_val) == (whole.step, "patience", whole.best_val)
    for key in whole.params:
        assert np.array_equal(whole.params[key], continued.params[key]), key
        assert np.array_equal(whole.best[key], continued.best[key]), key


def test_a_refit_trains_every_name_for_the_epochs_of_the_best(whole):
    cfg = refit_config(whole)
    assert cfg.val_fraction == 0 and not cfg.refit and cfg.patience == 0 and cfg.max_seconds is None
    assert cfg.steps == round(whole.best_val[0] * 320 / 288)
    refit = Trainer(NAMES, cfg)
    assert len(refit.train_idx) == 320 and refit.run()["steps"] == cfg.steps


def test_a_refit_needs_validation_names():
    with pytest.raises(Exception, match="refit finds its length on validation names"):
        Trainer(NAMES, TrainConfig(**QUICK, refit=True, val_fraction=0.0))


def test_preset_best_refits_lists_below_the_large_size_only():
    assert recipe.refits(recipe.REFIT_BELOW - 1) and not recipe.refits(recipe.REFIT_BELOW)
    assert Trainer(NAMES, TrainConfig(**QUICK, refit=True)).refits
    assert not Trainer(NAMES, TrainConfig(**QUICK)).refits


def test_a_list_too_small_to_hold_any_name_out_is_not_refitted():
    two = NameList(["Zed", "Zed"], [1, 1], "a + b", categories=[0, 1], category_names=["a", "b"])
    trainer = Trainer(two, TrainConfig(**QUICK, refit=True))
    assert len(trainer.val_idx) == 0 and not trainer.refits


def test_without_validation_names_the_chosen_length_runs_with_no_patience():
    trainer = Trainer(NAMES, TrainConfig(**QUICK, val_fraction=0.0))
    assert trainer.cfg.patience == 0 and trainer.cfg.steps == recipe.steps_for(320, 16)
