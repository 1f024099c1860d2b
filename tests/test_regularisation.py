"""Issue 4's training features: over-fitting, early stopping, presets, dropout,
weight decay, the schedule and the baselines."""

import math

import numpy as np
import pytest

from dinogen import model, optim
from dinogen.baselines import ngram_logprob, ngram_nll
from dinogen.data import NameList, Vocab, encode_names, make_batch
from dinogen.errors import DinogenError
from dinogen.optim import SGD, Adam
from dinogen.schedule import cosine_lr
from dinogen.config import PRESETS, TrainConfig, config_from
from dinogen.train import Trainer

FEW = ["Ankylosaurus", "Brachiosaurus", "Coelophysis", "Diplodocus", "Edmontosaurus"]


def name_list(names):
    return NameList(list(names), list(range(1, len(names) + 1)), "test")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_tiny_model_overfits_a_handful_of_names(cell):
    trainer = Trainer(name_list(FEW), TrainConfig(cell=cell, hidden=32, steps=400, batch_size=5, lr=1e-2,
                                                  val_fraction=0.0, schedule="constant", dropout=0.0,
                                                  weight_decay=0.0))
    trainer.run()
    # Only the first letter stays uncertain (1 of 5); everything after it is memorised.
    floor = len(FEW) * math.log(len(FEW)) / trainer.data.predictions()
    assert trainer.loss_on(trainer.train_idx) < floor + 0.02


def test_early_stopping_keeps_the_best_parameters_not_the_latest():
    names = [f"{a}{b}{c}" for a in "abcdefgh" for b in "aeiou" for c in "klmnprst"]  # 320 names
    cfg = TrainConfig(cell="rnn", hidden=64, embed_dim=0, dropout=0.0, steps=5000, batch_size=8, lr=3e-2,
                      schedule="constant", eval_every=10, patience=3)
    trainer = Trainer(name_list(names), cfg)
    summary = trainer.run()
    assert summary["stopped_early"] and summary["steps"] < 5000
    best_step, best_loss = trainer.best_val
    assert best_step < trainer.step
    assert best_loss == min(loss for _, loss in trainer.val_history)
    assert trainer.loss_on(trainer.val_idx, trainer.best) == pytest.approx(best_loss)
    assert trainer.loss_on(trainer.val_idx) > best_loss
    assert trainer.checkpoint().inference_params() is trainer.best


def test_course_preset_reproduces_the_notebook_settings():
    cfg = config_from("course")
    assert (cfg.cell, cfg.hidden, cfg.optimizer, cfg.lr, cfg.batch_size) == ("rnn", 50, "sgd", 0.01, 1)
    assert (cfg.clip, cfg.clip_mode, cfg.loss_per, cfg.lowercase) == (5.0, "value", "name", True)


def loss_gradients_seen(monkeypatch) -> list:
    """The loss gradients (one per prediction) that training steps hand to model.backward, as they come."""
    seen = []
    backward = model.backward

    def spy(dnll, cache):
        seen.append(dnll.copy())
        return backward(dnll, cache)

    monkeypatch.setattr(model, "backward", spy)
    return seen


def test_the_course_preset_sums_the_loss_over_each_name_and_clips_each_entry(monkeypatch):
    import dinogen.train as train_module

    seen, clipped = loss_gradients_seen(monkeypatch), []
    monkeypatch.setattr(train_module, "clip_elementwise", lambda grads, limit: clipped.append(limit) or 1.0)
    Trainer(name_list(FEW), config_from("course", steps=1, val_fraction=0.0)).train_step()
    assert np.all(seen[0] == 1.0)  # one name per step, its loss summed: every character weighs 1
    assert clipped == [5.0]


def test_the_default_loss_is_the_mean_over_every_predicted_character(monkeypatch):
    seen = loss_gradients_seen(monkeypatch)
    Trainer(name_list(FEW), TrainConfig(hidden=8, steps=1, batch_size=5, val_fraction=0.0)).train_step()
    predictions = sum(len(name) + 1 for name in FEW)
    assert seen[0].shape == (predictions,) and np.allclose(seen[0], 1 / predictions)


def test_lowercase_folds_the_names_a_library_caller_passes():
    trainer = Trainer(name_list(["Rex", "ANNA"]), TrainConfig(lowercase=True, hidden=8, steps=1, val_fraction=0.0))
    assert trainer.vocab.chars == ("a", "e", "n", "r", "x")
    assert trainer.names.names == ["rex", "anna"]


def test_explicit_flags_override_a_preset():
    cfg = config_from("course", hidden=80, lr=None)
    assert cfg.hidden == 80 and cfg.lr == PRESETS["course"]["lr"]


def test_an_unknown_preset_is_refused():
    with pytest.raises(DinogenError, match="no preset"):
        config_from("fastest")


def test_dropout_is_on_in_training_and_off_in_evaluation():
    vocab = Vocab.from_names(FEW)
    data = encode_names(FEW, vocab)
    batch = make_batch(data, np.arange(len(FEW)))
    cfg = model.ModelConfig(vocab.size, "gru", 16, 2, embed_dim=8, dropout=0.5)
    params = model.init_params(cfg, np.random.default_rng(0), dtype=np.float64)
    eval_a, _ = model.forward(params, cfg, batch)
    eval_b, _ = model.forward(params, cfg, batch)
    train_a, _ = model.forward(params, cfg, batch, np.random.default_rng(1))
    train_b, _ = model.forward(params, cfg, batch, np.random.default_rng(1))
    assert np.array_equal(eval_a, eval_b)
    assert np.array_equal(train_a, train_b)
    assert not np.allclose(eval_a, train_a)


def test_step_by_step_matches_the_batched_forward_with_embedding_and_layers():
    vocab = Vocab.from_names(FEW)
    data = encode_names(FEW[:1], vocab)
    batch = make_batch(data, np.array([0]))
    cfg = model.ModelConfig(vocab.size, "lstm", 8, 2, embed_dim=4)
    params = model.init_params(cfg, np.random.default_rng(2), dtype=np.float64)
    nll, _ = model.forward(params, cfg, batch)
    states = model.initial_states(cfg, 1, np.float64)
    stepped = []
    for x, y in zip(batch.x[:, 0], batch.y[:, 0]):
        logits, states = model.step(params, cfg, np.array([x]), states)
        log_p = logits - np.log(np.exp(logits).sum())
        stepped.append(-log_p[0, y])
    assert np.allclose(nll, stepped)


@pytest.mark.parametrize("optimizer", [Adam, SGD])
def test_weight_decay_shrinks_weights_and_the_embedding_but_not_biases(optimizer):
    names = ["W_emb", "W_xh.0", "W_hh.0", "b_h.0", "W_hy", "b_y"]
    params = {name: np.ones(3) for name in names}
    opt = optimizer(params, lr=0.1, weight_decay=0.5)
    opt.step(params, {name: np.zeros(3) for name in names})
    assert {name for name in names if np.allclose(params[name], 0.95)} == {"W_emb", "W_xh.0", "W_hh.0", "W_hy"}
    assert np.allclose(params["b_h.0"], 1.0) and np.allclose(params["b_y"], 1.0)


def test_adam_updates_a_large_parameter_by_pieces_exactly_as_in_one(monkeypatch):
    rng = np.random.default_rng(0)
    start = {"W_hh.0": rng.standard_normal((70, 30)).astype(np.float32), "b_y": np.zeros(5, np.float32)}
    grads = [{name: rng.standard_normal(p.shape).astype(np.float32) for name, p in start.items()} for _ in range(3)]
    results = []
    for chunk in (64, 10**6):  # 2,100 entries in 33 pieces, then in one
        monkeypatch.setattr(optim, "ADAM_CHUNK", chunk)
        params = {name: p.copy() for name, p in start.items()}
        opt = Adam(params, lr=0.01, weight_decay=0.1)
        for g in grads:
            opt.step(params, g)
        results.append(params["W_hh.0"])
    assert not np.array_equal(results[0], start["W_hh.0"])
    assert np.array_equal(results[0], results[1])


def test_adam_updates_a_large_parameter_that_is_not_contiguous_in_place(monkeypatch):
    monkeypatch.setattr(optim, "ADAM_CHUNK", 64)  # where reshape(-1) would copy instead of viewing
    rng = np.random.default_rng(0)
    W = np.asfortranarray(rng.standard_normal((70, 30)).astype(np.float32))
    g = rng.standard_normal(W.shape).astype(np.float32)
    expected = W.copy(order="C")
    Adam({"W": expected}, lr=0.01).step({"W": expected}, {"W": g})
    Adam({"W": W}, lr=0.01).step({"W": W}, {"W": g})
    assert np.array_equal(W, expected)


def test_cosine_schedule_runs_from_lr_to_the_floor():
    assert cosine_lr(0.01, 0.0, 0.1) == pytest.approx(0.01)
    assert cosine_lr(0.01, 0.5, 0.1) == pytest.approx(0.0055)
    assert cosine_lr(0.01, 1.0, 0.1) == pytest.approx(0.001)


def test_add_one_bigram_matches_a_hand_count():
    vocab = Vocab.from_names(["ab", "b"])  # V = 3: boundary, a, b
    train = encode_names(["ab", "b"], vocab)
    test = encode_names(["a"], vocab)
    # Test predictions: (<b> -> a) and (a -> <b>). Training pairs: <b>a, ab, b<b>, <b>b, b<b>.
    p_start_a = (1 + 1) / (2 + 3)  # count(<b>, a) = 1 of count(<b>) = 2
    p_a_end = (0 + 1) / (1 + 3)  # count(a, <b>) = 0 of count(a) = 1
    expected = -(math.log(p_start_a) + math.log(p_a_end)) / 2
    assert ngram_nll(train, [0, 1], test, [0], vocab.size, n=2, alpha=1.0) == pytest.approx(expected)


def test_ngram_logprob_gives_each_name_its_own_sum_in_the_order_asked():
    vocab = Vocab.from_names(["ab", "b"])  # V = 3: boundary, a, b
    train = encode_names(["ab", "b"], vocab)
    test = encode_names(["a", "bb", "ab"], vocab)  # batched longest first; the answer keeps the order asked
    p_start_a, p_a_end = (1 + 1) / (2 + 3), (0 + 1) / (1 + 3)  # as in the hand count above
    logprob = ngram_logprob(train, [0, 1], test, [2, 0], vocab.size, n=2, alpha=1.0)
    assert logprob[1] == pytest.approx(math.log(p_start_a) + math.log(p_a_end))
    every = ngram_logprob(train, [0, 1], test, [0, 1, 2], vocab.size, n=2, alpha=1.0)
    assert every[[2, 0]] == pytest.approx(logprob)
    assert -every.sum() / test.predictions() == pytest.approx(ngram_nll(train, [0, 1], test, [0, 1, 2], vocab.size,
                                                                         n=2, alpha=1.0))


def test_higher_order_ngram_beats_bigram_on_repetitive_names():
    names = ["abcabc", "bcabca", "cabcab"] * 10
    vocab = Vocab.from_names(names)
    data = encode_names(names, vocab)
    idx = np.arange(len(names))
    assert ngram_nll(data, idx, data, idx, vocab.size, 4, 0.1) < ngram_nll(data, idx, data, idx, vocab.size, 2, 1.0)


def test_summary_reports_the_baselines(small_trainer):
    summary = small_trainer.summary(1.0)
    assert summary["uniform_loss"] == pytest.approx(math.log(small_trainer.vocab.size))
    assert summary["bigram_loss"] < summary["uniform_loss"]
    assert summary["best_val_loss"] < summary["uniform_loss"]
