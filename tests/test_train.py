"""Training: it learns, it keeps the best parameters, and seeds reproduce it."""

import math
import re

import numpy as np
import pytest

from dinogen.data import NameList
from dinogen.errors import DinogenError
from dinogen.optim import Adam, clip_elementwise, clip_global_norm
from dinogen.config import TrainConfig
from dinogen.train import Trainer


def test_a_few_hundred_steps_bring_validation_loss_far_below_ln_v(small_trainer):
    uniform = math.log(small_trainer.vocab.size)
    assert small_trainer.step == 300
    assert small_trainer.val_history[-1][1] < 0.65 * uniform


def test_validation_names_are_never_trained_on(small_trainer):
    trained = set()
    for step in range(small_trainer.schedule.per_epoch):
        trained.update(small_trainer.schedule[step].tolist())
    assert trained == set(small_trainer.train_idx.tolist())
    assert not trained & set(small_trainer.val_idx.tolist())


def test_best_parameters_are_those_of_the_lowest_validation_loss(small_trainer):
    best_step, best_loss = small_trainer.best_val
    assert best_loss == min(loss for _, loss in small_trainer.val_history)
    assert small_trainer.loss_on(small_trainer.val_idx, small_trainer.best) == pytest.approx(best_loss)


def test_smoothed_loss_starts_at_the_uniform_loss():
    names = NameList(["abc", "abd", "bcd"] * 5, list(range(1, 16)), "test")
    trainer = Trainer(names, TrainConfig(hidden=8, steps=1))
    assert trainer.smooth_loss == pytest.approx(math.log(trainer.vocab.size))


def test_the_same_seed_trains_the_same_parameters():
    names = NameList(["anna", "bob", "carl", "dora", "emil", "fred"] * 3, list(range(1, 19)), "test")
    runs = []
    for _ in range(2):
        trainer = Trainer(names, TrainConfig(hidden=8, steps=20, batch_size=4, seed=9))
        trainer.run()
        runs.append(trainer.params)
    for key in runs[0]:
        assert np.array_equal(runs[0][key], runs[1][key])


def test_max_seconds_stops_training_early():
    names = NameList(["anna", "bob"] * 10, list(range(1, 21)), "test")
    trainer = Trainer(names, TrainConfig(hidden=8, steps=10**9, max_seconds=0.2))
    summary = trainer.run()
    assert 0 < summary["steps"] < 10**9


@pytest.mark.parametrize(
    "override, message",
    [({"steps": 0}, "steps"), ({"batch_size": 0}, "batch size"), ({"hidden": 0}, "hidden"),
     ({"lr": -1.0}, "learning rate"), ({"val_fraction": 1.0}, "validation fraction"),
     ({"patience": 3, "val_fraction": 0.0}, "patience needs validation names")],
)
def test_impossible_settings_are_refused(override, message):
    names = NameList(["anna"], [1], "test")
    with pytest.raises(DinogenError, match=message):
        Trainer(names, TrainConfig(**override))


def test_an_empty_name_list_is_refused():
    with pytest.raises(DinogenError, match="holds no names"):
        Trainer(NameList([], [], "empty.txt"), TrainConfig())


def test_global_norm_clipping_scales_all_gradients_together():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    assert clip_global_norm(grads, 1.0) == pytest.approx(5.0)
    assert np.allclose(grads["a"], [0.6, 0.0]) and np.allclose(grads["b"], [0.8])


def test_global_norm_clipping_survives_float32_squares_that_overflow():
    grads = {"a": np.full(4, 1e19, np.float32)}  # each square is 1e38, their sum past float32's 3.4e38
    assert clip_global_norm(grads, 5.0) == pytest.approx(2e19, rel=1e-6)
    assert np.allclose(grads["a"], 2.5)


def test_elementwise_clipping_clips_each_entry():
    grads = {"a": np.array([-9.0, 0.5, 7.0])}
    clip_elementwise(grads, 5.0)
    assert grads["a"].tolist() == [-5.0, 0.5, 5.0]


def test_adam_first_step_moves_each_weight_by_about_lr():
    params = {"w": np.array([1.0, -1.0])}
    opt = Adam(params, lr=0.1)
    opt.step(params, {"w": np.array([0.5, -2.0])})
    assert np.allclose(params["w"], [0.9, -0.9], atol=1e-6)


@pytest.mark.parametrize("n", [0, 1, 4_999, 5_000, 5_001, 9_999, 10_000, 12_345])
def test_a_spread_subset_never_holds_more_than_asked(n):
    from dinogen.run_data import spread

    subset = spread(np.arange(n), 5_000)
    assert len(subset) == n if n <= 5_000 else 2_500 < len(subset) <= 5_000


def test_the_smoothed_loss_tracks_the_mean_of_the_recent_steps_from_the_first_few(bundled_names):
    from dinogen.train import smooth_window

    trainer = Trainer(bundled_names, TrainConfig(cell="rnn", hidden=32, embed_dim=0, dropout=0.0, steps=400,
                                                  batch_size=32, eval_every=100))
    seen = []  # (loss of the step, smoothed loss after it)
    trainer.run(on_progress=lambda p: seen.append((p.loss, p.smooth_loss)))
    window = smooth_window(400)
    losses = np.array([loss for loss, _ in seen])
    assert losses[0] - losses[-1] > 1.0  # the loss falls a lot: a lagging average would show it
    course_style = math.log(trainer.vocab.size)  # the notebook's 0.999 average from ln V lags by far more
    for k in range(5, len(seen)):
        recent = losses[max(0, k + 1 - window): k + 1].mean()
        assert abs(seen[k][1] - recent) < 0.2, k
        course_style = 0.999 * course_style + 0.001 * losses[k]
    assert course_style - losses[-window:].mean() > 1.0
    assert trainer.smooth_loss == seen[-1][1]


def test_a_time_limit_that_sets_the_learning_rate_is_recorded_and_said():
    names = NameList(["anna", "bob"] * 10, list(range(1, 21)), "test")
    clocked = Trainer(names, TrainConfig(hidden=8, steps=10**6, max_seconds=0.2))
    clocked.run()
    assert clocked.state.clock_led and clocked.checkpoint().meta["clock_led"] is True
    by_steps = Trainer(names, TrainConfig(hidden=8, steps=20))
    assert not by_steps.run()["clock_led"]


def test_a_library_caller_may_train_on_a_plain_list_of_strings():
    trainer = Trainer(["Anna", "Bob", "Carl", "Dora", "Emil", "Fritz", "Gus", "Hans", "Ida", "Jan"],
                      TrainConfig(steps=3, hidden=8, cell="rnn", embed_dim=0))
    trainer.run()
    assert trainer.step == 3


@pytest.mark.parametrize("names, message", [
    ("Anna", "not a list of strings or a NameList"),
    (NameList(["An\x1bna", "Bob"], [1, 2], "lib"), "line 1: the name 'An\\x1bna' holds U+001B"),
    (NameList(["Anna", ""], [1, 2], "lib"), "line 2: the name '' is empty"),
    (NameList(["Anna", "Ab\ncd"], [1, 2], "lib"), "line 2: the name 'Ab\\ncd' holds U+000A"),
    (NameList(["Ann", "Bo", "Cy", "Di"], [1, 2, 3, 4], "lib", categories=[0, 0, 1, 1], category_names=["a", "a"]),
     "names a category twice"),
    (NameList(["Ann", "Bo", "Cy", "Di"], [1, 2, 3, 4], "lib", categories=[0, 0, 0, 0], category_names=["a", "b"]),
     "the category 'b' holds no name"),
])
def test_names_a_checkpoint_could_not_hold_are_refused_before_training_not_after(names, message):
    with pytest.raises(DinogenError, match=re.escape(message)):
        Trainer(names, TrainConfig(steps=3, hidden=8))
