"""The readable reference path computes what the fast path computes: the same loss, the same gradients."""

import numpy as np
import pytest

from dinogen import model, reference
from dinogen.data import Vocab, encode_names, make_batch

NAMES = ["Ann", "Bo", "Carlotta", "Dee", "Eliza", "Fay", "Gustavo", "Hu"]  # lengths 2 to 8: a padded batch


def batch_and_vocab(categories: int = 0):
    vocab = Vocab.from_names(NAMES)
    cats = [i % categories for i in range(len(NAMES))] if categories else None
    data = encode_names(NAMES, vocab, categories=cats)
    return make_batch(data, np.arange(len(NAMES))), vocab


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("embed_dim", [0, 5])
@pytest.mark.parametrize("categories", [0, 3])
def test_the_reference_and_the_fast_path_give_the_same_loss_and_gradients(cell, layers, embed_dim, categories):
    batch, vocab = batch_and_vocab(categories)
    assert batch.n_predictions < batch.x.size  # padding is present
    cfg = model.ModelConfig(vocab.size, cell, hidden=7, layers=layers, embed_dim=embed_dim, categories=categories)
    params = model.init_params(cfg, np.random.default_rng(5), dtype=np.float64)
    for name in params:  # biases away from 0, so that every gradient term is exercised
        params[name] += 0.1 * np.random.default_rng(len(name)).standard_normal(params[name].shape)
    fast_loss, fast_grads = model.loss_and_grads(params, cfg, batch)
    ref_loss, cache = reference.forward(params, cfg, batch)
    ref_grads = reference.backward(cache)
    assert ref_loss == pytest.approx(fast_loss, rel=1e-12)
    assert ref_grads.keys() == fast_grads.keys()
    for name, fast in fast_grads.items():
        error = np.linalg.norm(ref_grads[name] - fast) / max(1e-300, np.linalg.norm(fast))
        assert error < 1e-10, name


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_reference_step_matches_the_fast_sampling_step(cell):
    from dinogen.cells import CELLS

    rng = np.random.default_rng(2)
    B, D, H, G = 4, 3, 5, CELLS[cell].gates
    x, W_xh, W_hh, b = rng.normal(size=(B, D)), rng.normal(size=(D, G * H)), rng.normal(size=(H, G * H)), rng.normal(size=G * H)
    state = tuple(rng.normal(size=(B, H)) for _ in range(CELLS[cell].state_arrays))
    step_forward = reference.STEPS[cell][0]
    ref_state, _ = step_forward(x, state, W_xh, W_hh, b)
    fast_state = CELLS[cell].step(x @ W_xh + b, state, W_hh)
    for ref, fast in zip(ref_state, fast_state):
        np.testing.assert_allclose(ref, fast, rtol=1e-12, atol=1e-12)
