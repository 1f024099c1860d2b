"""The recurrent cells: gradients, padding, sampling steps and dtypes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dinogen import cells, gradcheck, model
from dinogen.data import Dataset, make_batch
from dinogen.workspace import Workspace

CELL_NAMES = ["rnn", "lstm", "gru"]


def random_cell_inputs(cell: cells.Cell, T: int, B: int, H: int, dtype=np.float64, seed: int = 0):
    """a_x: (T, B, G*H) and W_hh: (H, G*H) of moderate size, so no gate saturates."""
    rng = np.random.default_rng(seed)
    a_x = rng.standard_normal((T, B, cell.gates * H)).astype(dtype)
    W_hh = (rng.standard_normal((H, cell.gates * H)) / np.sqrt(H)).astype(dtype)
    return a_x, W_hh


def name_nll(params, cfg: model.ModelConfig, data: Dataset, idx: list[int], name: int) -> np.ndarray:
    """NLL of each prediction of data set name `name`, in time order, when batched with idx."""
    batch = make_batch(data, np.array(idx))
    nll, _ = model.forward(params, cfg, batch)
    B = batch.x.shape[1]
    column = list(batch.names).index(name)
    return nll[batch.real % B == column]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_match_finite_differences(cell, layers):
    checks = gradcheck.check_model(model.ModelConfig(vocab_size=7, hidden=5, layers=layers, cell=cell))
    failed = {c.name: c.rel_error for c in checks if not c.passed}
    assert not failed


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_padding_does_not_change_a_names_nll(cell):
    cfg = model.ModelConfig(vocab_size=7, hidden=6, layers=2, cell=cell)
    params = model.init_params(cfg, np.random.default_rng(1), dtype=np.float64)
    codes = np.array([3, 1, 4, 1, 5, 2, 6, 5, 3], dtype=np.int32)
    data = Dataset(codes, np.array([0, 3, 9], dtype=np.int64))  # names of 3 and 6 characters
    alone = name_nll(params, cfg, data, [0], name=0)
    padded = name_nll(params, cfg, data, [0, 1], name=0)
    assert np.allclose(alone, padded, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_padded_positions_stay_exactly_zero(cell):
    c = cells.CELLS[cell]
    a_x, W_hh = random_cell_inputs(c, T=4, B=3, H=5)
    n_active = np.array([3, 3, 2, 1])
    h, cache = c.forward(a_x, n_active, W_hh)
    da_x, _ = c.backward(np.ones_like(h), cache)
    for t, n in enumerate(n_active):
        assert not h[t, n:].any()
        assert not da_x[t, n:].any()


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_step_reproduces_forward(cell):
    c = cells.CELLS[cell]
    T, H = 6, 5
    a_x, W_hh = random_cell_inputs(c, T=T, B=1, H=H)
    h, _ = c.forward(a_x, np.ones(T, dtype=int), W_hh)
    state = c.initial_state(1, H, np.float64)
    for t in range(T):
        state = c.step(a_x[t], state, W_hh)
        assert np.allclose(state[0], h[t], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_float32_inputs_give_float32_outputs(cell):
    c = cells.CELLS[cell]
    a_x, W_hh = random_cell_inputs(c, T=4, B=3, H=5, dtype=np.float32)
    h, cache = c.forward(a_x, np.array([3, 3, 2, 1]), W_hh)
    da_x, dW_hh = c.backward(np.ones_like(h), cache)
    assert (h.dtype, da_x.dtype, dW_hh.dtype) == (np.float32,) * 3


def lstm_backward_forget_gate_uses_c_t(dh, cache):
    """lstm_backward with df = dc_t * c_t instead of dc_t * c_{t-1}."""
    gates, cs, *rest = cache
    return cells.lstm_backward(dh, (gates, cs[1:], *rest))  # cs[1:][t] = c_t


def gru_backward_dW_hh_without_reset_gate(dh, cache):
    """gru_backward with dW_hh built from da_x, forgetting the r in the n block."""
    da_x, _ = cells.gru_backward(dh, cache)
    hs = cache[2]
    H = hs.shape[-1]
    return da_x, hs[1:-1].reshape(-1, H).T @ da_x[1:].reshape(-1, 3 * H)


@pytest.mark.parametrize(
    "cell, broken_backward, param",
    [("lstm", lstm_backward_forget_gate_uses_c_t, "b_h.0"), ("gru", gru_backward_dW_hh_without_reset_gate, "W_hh.0")],
)
def test_gradcheck_catches_a_broken_backward(monkeypatch, cell, broken_backward, param):
    monkeypatch.setitem(cells.CELLS, cell, dataclasses.replace(cells.CELLS[cell], backward=broken_backward))
    checks = {c.name: c for c in gradcheck.check_model(model.ModelConfig(vocab_size=7, hidden=5, layers=1, cell=cell))}
    assert not checks[param].passed
    assert checks[param].rel_error > 1000 * gradcheck.TOLERANCE


@pytest.mark.parametrize("shape", [(5, 20), (32, 128), (37, 148), (512, 2048)])
def test_the_transpose_copied_by_blocks_of_rows_is_exactly_the_transpose(shape):
    W = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    W_T = cells.transposed(W, Workspace())
    assert W_T.flags.c_contiguous
    assert np.array_equal(W_T, W.T)
