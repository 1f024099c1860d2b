"""The workspace: reused arrays change nothing but the speed."""

from __future__ import annotations

import numpy as np
import pytest

from dinogen import model
from dinogen.data import Dataset, make_batch
from dinogen.workspace import FRESH, Workspace


def test_a_name_gets_the_same_memory_at_every_request():
    ws = Workspace()
    first = ws.empty("a", (4, 5), np.float32)
    again = ws.empty("a", (3, 5), np.float32)
    assert np.shares_memory(first, again)
    assert again.shape == (3, 5) and again.flags.c_contiguous


def test_a_buffer_grows_when_a_larger_array_is_asked_for():
    ws = Workspace()
    ws.empty("a", (2, 2), np.float32)
    big = ws.empty("a", (10, 10), np.float32)
    assert big.shape == (10, 10) and ws.nbytes >= big.nbytes


def test_scopes_and_names_never_share_memory():
    ws = Workspace()
    arrays = [ws.empty("a", (3,), np.float64), ws.empty("b", (3,), np.float64),
              ws.scope("x").empty("a", (3,), np.float64), ws.scope("y").empty("a", (3,), np.float64)]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :]:
            assert not np.shares_memory(a, b)


def test_zeros_clears_what_the_last_user_left():
    ws = Workspace()
    ws.empty("a", (5,), np.float32)[:] = 7.0
    assert not ws.zeros("a", (5,), np.float32).any()


def test_fresh_never_reuses():
    assert not np.shares_memory(FRESH.empty("a", (3,), np.float32), FRESH.empty("a", (3,), np.float32))
    assert FRESH.nbytes == 0


def random_data(lengths: list[int], vocab_size: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    codes = rng.integers(1, vocab_size, size=sum(lengths)).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Dataset(codes, offsets)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers, embed_dim, dropout", [(1, 0, 0.0), (2, 6, 0.3)])
def test_a_reused_workspace_gives_the_losses_and_gradients_of_fresh_arrays(cell, layers, embed_dim, dropout):
    cfg = model.ModelConfig(vocab_size=9, cell=cell, hidden=6, layers=layers, embed_dim=embed_dim, dropout=dropout)
    params = model.init_params(cfg, np.random.default_rng(0))
    data = random_data([9, 2, 5, 12, 3, 7, 1, 4], cfg.vocab_size)
    ws = Workspace()
    for idx in ([0, 1, 2], [3, 4, 5, 6, 7], [1, 6], [0, 3, 5]):  # longer, shorter and wider batches in turn
        batch = make_batch(data, np.array(idx))
        fresh_loss, fresh = model.loss_and_grads(params, cfg, batch, np.random.default_rng(len(idx)))
        reused_loss, reused = model.loss_and_grads(params, cfg, batch, np.random.default_rng(len(idx)), ws)
        assert reused_loss == fresh_loss
        for name in params:
            np.testing.assert_array_equal(reused[name], fresh[name])
