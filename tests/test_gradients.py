"""The hand-written gradients, proven against finite differences, and the loss they come from."""

import dataclasses
import math

import numpy as np
import pytest

from dinogen import cells, gradcheck, model
from dinogen.data import BOUNDARY, PAD, Vocab, encode_names, make_batch
from dinogen.layers import cross_entropy_forward


def failing(results):
    return {r.name for r in results if not r.passed}


@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_passes_for_every_parameter_on_a_padded_batch(layers):
    results = gradcheck.check_model(model.ModelConfig(vocab_size=7, hidden=5, layers=layers))
    assert [r.name for r in results] == [*model.param_shapes(model.ModelConfig(7, "rnn", 5, layers)), "padding"]
    assert failing(results) == set()


def test_gradcheck_batch_really_is_padded():
    batch = make_batch(gradcheck.random_names(7, [7, 2, 5, 1, 4], np.random.default_rng(0)), np.arange(5))
    assert batch.n_predictions < batch.x.size
    assert batch.n_active.tolist() == [5, 5, 4, 3, 3, 2, 1, 1]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_padding_that_leaks_into_the_loss_is_caught_though_its_gradients_are_right(monkeypatch, cell):
    def leaky_batch(data, idx):  # padded positions become predictions of the end token
        batch = make_batch(data, idx)
        y = np.where(batch.y == PAD, BOUNDARY, batch.y).astype(np.int32)
        return dataclasses.replace(batch, y=y, n_active=np.full_like(batch.n_active, y.shape[1]),
                                   real=np.arange(y.size))

    monkeypatch.setattr(gradcheck, "make_batch", leaky_batch)
    results = gradcheck.check_model(model.ModelConfig(vocab_size=7, hidden=5, cell=cell))
    assert failing(results) == {"padding"}  # every finite difference agrees with the leaky loss


def test_dW_hh_built_from_dh_instead_of_h_prev_is_caught(monkeypatch):
    def broken_backward(dh, cache):
        da_x, _ = cells.rnn_backward(dh, cache)
        H = dh.shape[-1]
        return da_x, dh[:-1].reshape(-1, H).T @ da_x[1:].reshape(-1, H)

    monkeypatch.setitem(cells.CELLS, "rnn", dataclasses.replace(cells.CELLS["rnn"], backward=broken_backward))
    failed = failing(gradcheck.check_model(model.ModelConfig(vocab_size=7, hidden=5)))
    assert failed - {"padding"} == {"W_hh.0"}  # its batch and single-name gradients disagree too


def test_softmax_normalised_over_the_batch_axis_is_caught(monkeypatch):
    def broken_backward(dnll, cache):
        probs, y, _ = cache
        p = probs / probs.sum(axis=0, keepdims=True)  # normalised over names, not characters
        p[np.arange(len(y)), y] -= 1.0
        return p * dnll[:, None]

    monkeypatch.setattr(model, "cross_entropy_backward", broken_backward)
    assert failing(gradcheck.check_model(model.ModelConfig(vocab_size=7, hidden=5))) >= {"W_hy", "b_y"}


def test_softmax_sums_to_one_over_the_vocabulary_for_any_batch_size():
    logits = np.random.default_rng(0).standard_normal((3, 5)) * 50
    nll, (probs, y, _) = cross_entropy_forward(logits, np.array([0, 1, 2]))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert np.allclose(nll, -np.log(probs[np.arange(3), y]))
    assert np.isfinite(nll).all()


def test_untrained_model_loss_is_close_to_ln_v(bundled_names):
    vocab = Vocab.from_names(bundled_names.names)
    data = encode_names(bundled_names.names, vocab)
    cfg = model.ModelConfig(vocab.size)
    params = model.init_params(cfg, np.random.default_rng(0))
    total, count = model.total_nll(params, cfg, data, np.arange(len(data)))
    assert total / count == pytest.approx(math.log(vocab.size), abs=0.05)


def per_name_results(params, cfg, data, idx, name):
    """NLL of one name and the gradients of that name's summed NLL, computed inside a batch."""
    batch = make_batch(data, np.array(idx))
    nll, cache = model.forward(params, cfg, batch)
    column = batch.real % batch.x.shape[1]
    mine = batch.names[column] == name  # predictions that belong to `name`
    grads = model.backward(mine.astype(nll.dtype), cache)
    return nll[mine].sum(), grads


@pytest.mark.parametrize("layers", [1, 2])
def test_padding_does_not_change_a_names_loss_or_gradients(layers):
    names = ["ab", "b", "abcabcabcabcab", "cba"]
    vocab = Vocab.from_names(names)
    data = encode_names(names, vocab)
    cfg = model.ModelConfig(vocab.size, hidden=6, layers=layers)
    params = model.init_params(cfg, np.random.default_rng(1), dtype=np.float64)
    alone_nll, alone_grads = per_name_results(params, cfg, data, [0], name=0)
    padded_nll, padded_grads = per_name_results(params, cfg, data, [0, 1, 2, 3], name=0)
    assert padded_nll == pytest.approx(alone_nll, rel=1e-12)
    for key in params:
        assert np.allclose(alone_grads[key], padded_grads[key], rtol=1e-10, atol=1e-13), key


def test_loss_is_the_mean_over_real_predictions_only():
    names = ["abc", "a"]
    vocab = Vocab.from_names(names)
    data = encode_names(names, vocab)
    cfg = model.ModelConfig(vocab.size, hidden=4)
    params = model.init_params(cfg, np.random.default_rng(2), dtype=np.float64)
    loss, _ = model.loss_and_grads(params, cfg, make_batch(data, np.array([0, 1])))
    total, count = model.total_nll(params, cfg, data, np.array([0, 1]))
    assert count == 4 + 2
    assert loss == pytest.approx(total / count)


def test_large_vocabularies_use_the_sorted_scatter_and_agree(monkeypatch):
    from dinogen import layers

    rng = np.random.default_rng(3)
    x = rng.integers(0, 9, size=(5, 4))
    real = np.flatnonzero(rng.random(20) < 0.8)
    dout = rng.standard_normal((5, 4, 3))
    W = np.zeros((9, 3))
    _, cache = layers.lookup_forward(x, W, np.zeros(3), real)
    one_hot = layers.lookup_backward(dout, cache)
    monkeypatch.setattr(layers, "ONE_HOT_MAX_V", 4)
    sorted_scatter = layers.lookup_backward(dout, cache)
    expected = np.zeros((9, 3))
    np.add.at(expected, x.ravel()[real], dout.reshape(-1, 3)[real])
    assert np.allclose(one_hot[0], expected) and np.allclose(sorted_scatter[0], expected)
    assert np.allclose(one_hot[1], expected.sum(axis=0)) and np.allclose(sorted_scatter[1], expected.sum(axis=0))


@pytest.mark.parametrize("V", [9, 30])  # fewer rows than the 20 looked up, and more
def test_a_lookup_adds_its_bias_to_every_row_looked_up(V):
    from dinogen import layers

    rng = np.random.default_rng(4)
    x, W, b = rng.integers(0, V, size=(5, 4)), rng.standard_normal((V, 3)), rng.standard_normal(3)
    out, cache = layers.lookup_forward(x, W, b, np.arange(20))
    assert np.array_equal(out, W[x] + b)
    assert layers.lookup_backward(np.ones((5, 4, 3)), layers.lookup_forward(x, W, None, np.arange(20))[1])[1] is None
