"""Recurrent cells: only the recurrence, the one part that must loop over time.

This is the fast path. To learn what a cell computes, read dinogen/reference.py
first: the same equations, one time step at a time, one line each, proven equal
to these (tests/test_reference.py).

Shapes: T time steps, B names (sorted longest first), H hidden units, G gates
(1 for the vanilla RNN, 4 for the LSTM, 3 for the GRU). The input half of every
pre-activation, a_x = x W_xh + b, is computed by the caller over the whole
(T, B) block before the loop; the cell adds h_{t-1} W_hh at each step. At step t only the first n_active[t] names are
still going, so padded positions are never computed: their h stays 0 and their
gradients are exactly 0.

Each cell is a trio of functions:
    forward(a_x, n_active, W_hh, ws) -> (h, cache) a_x: (T, B, G*H), h: (T, B, H)
    backward(dh, cache) -> (da_x, dW_hh)          dh: (T, B, H) from above, not through time
    step(a_x_t, state, W_hh) -> state             one time step for sampling; state[0] is h

The G gate blocks lie side by side along the last axis of a_x, W_xh, W_hh and
b_h, each H wide: LSTM i, f, o, g; GRU r, z, n. All G blocks of a step come from
one (n, H) @ (H, G*H) product.

Every array of the block comes from ws (a workspace.Workspace; fresh arrays by
default), which the training loop reuses from step to step; the cache carries it
to backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dinogen.workspace import FRESH, Workspace


def rnn_forward(a_x: np.ndarray, n_active: np.ndarray, W_hh: np.ndarray, ws: Workspace = FRESH):
    """h_t = tanh(a_x[t] + h_{t-1} W_hh), h_0 = 0.

    a_x: (T, B, H); n_active: (T,) int; W_hh: (H, H). Returns h: (T, B, H).
    """
    T, B, H = a_x.shape
    h = ws.zeros("h", (T, B, H), a_x.dtype)
    np.tanh(a_x[0, : n_active[0]], out=h[0, : n_active[0]])  # h_0 = 0: no product at the first step
    for t in range(1, T):
        n = n_active[t]
        h_t = h[t, :n]
        np.matmul(h[t - 1, :n], W_hh, out=h_t)
        h_t += a_x[t, :n]
        np.tanh(h_t, out=h_t)
    return h, (h, n_active, W_hh, ws)


def rnn_backward(dh: np.ndarray, cache):
    """Gradients of rnn_forward.

    dh: (T, B, H) gradient of the loss w.r.t. each h_t from the layer above.
    Returns da_x: (T, B, H) and dW_hh: (H, H). dW_hh is built from h_{t-1}, in one
    matrix product over all steps after the loop; the loop only carries dh back.
    """
    h, n_active, W_hh, ws = cache
    T, B, H = h.shape
    dtanh = ws.empty("dtanh", (T, B, H), h.dtype)  # 1 - h^2, over the whole block
    np.multiply(h, h, out=dtanh)
    np.subtract(1.0, dtanh, out=dtanh)
    da_x = ws.zeros("da_x", (T, B, H), h.dtype)
    dh_next = ws.zeros("dh_next", (B, H), h.dtype)  # gradient reaching h_t from step t + 1
    W_hh_T = transposed(W_hh, ws)
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        da_t = da_x[t, :n]
        np.add(dh[t, :n], dh_next[:n], out=da_t)
        da_t *= dtanh[t, :n]
        if t > 0:
            np.matmul(da_t, W_hh_T, out=dh_next[:n])
    dW_hh = weight_grad(h[:-1], da_x[1:], ws)  # sum_t h_{t-1}^T da_t
    return da_x, dW_hh


TRANSPOSE_ROWS = 32  # rows of W copied into W.T at a time (see transposed)


def transposed(W: np.ndarray, ws: Workspace) -> np.ndarray:
    """A C-contiguous copy of W.T, which BLAS multiplies faster than the strided view.

    Copied TRANSPOSE_ROWS rows of W at a time: the columns written stay in the cache
    while they fill, where one strided copy of the whole matrix misses it at almost
    every element (W_hh of an LSTM of 512, (512, 2048): 5.5 ms one piece, 0.9 ms by
    32 rows, the same bytes).
    """
    W_T = ws.empty("W_T", W.shape[::-1], W.dtype)
    for lo in range(0, W.shape[0], TRANSPOSE_ROWS):
        np.copyto(W_T[:, lo : lo + TRANSPOSE_ROWS], W[lo : lo + TRANSPOSE_ROWS].T)
    return W_T


def weight_grad(h_prev: np.ndarray, da: np.ndarray, ws: Workspace) -> np.ndarray:
    """sum_t h_prev[t]^T da[t] as one product over all steps: h_prev: (T', B, H), da: (T', B, G*H)."""
    H, G_H = h_prev.shape[-1], da.shape[-1]
    return np.matmul(h_prev.reshape(-1, H).T, da.reshape(-1, G_H), out=ws.empty("dW_hh", (H, G_H), da.dtype))


def rnn_step(a_x_t: np.ndarray, state: tuple, W_hh: np.ndarray) -> tuple:
    """One step for sampling. a_x_t: (B, H); state: (h_prev,) with h_prev: (B, H)."""
    (h_prev,) = state
    return (np.tanh(a_x_t + h_prev @ W_hh),)


def _activate_(a: np.ndarray, k: int) -> None:
    """In place: sigmoid on a[..., :k], tanh on a[..., k:].

    One tanh call covers both, as sigmoid(x) = (1 + tanh(x / 2)) / 2, which also
    never overflows.
    """
    s = a[..., :k]
    s *= 0.5
    np.tanh(a, out=a)
    s += 1.0
    s *= 0.5


def lstm_forward(a_x: np.ndarray, n_active: np.ndarray, W_hh: np.ndarray, ws: Workspace = FRESH):
    """Long short-term memory, gate blocks in the order i, f, o, g:

        [i, f, o, g] = [sigmoid, sigmoid, sigmoid, tanh](a_x[t] + h_{t-1} W_hh)
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t),   h_0 = c_0 = 0.

    a_x: (T, B, 4H); n_active: (T,) int; W_hh: (H, 4H). Returns h: (T, B, H), a
    view of hs[1:] in the cache (gates, cs, tanh_c, hs, n_active, W_hh, ws), where
    hs, cs: (T + 1, B, H) hold h_{t-1}, c_{t-1} at index t.
    """
    T, B, G_H = a_x.shape
    H = G_H // 4
    hs = ws.zeros("hs", (T + 1, B, H), a_x.dtype)
    cs = ws.zeros("cs", (T + 1, B, H), a_x.dtype)
    gates = ws.zeros("gates", a_x.shape, a_x.dtype)  # (T, B, 4H) activated i, f, o, g; rows past n_active[t] stay 0
    tanh_c = ws.zeros("tanh_c", (T, B, H), a_x.dtype)
    ig = ws.empty("ig", (B, H), a_x.dtype)
    for t in range(T):
        n = n_active[t]
        a = gates[t, :n]
        if t > 0:
            np.matmul(hs[t, :n], W_hh, out=a)  # (n, 4H)
            a += a_x[t, :n]
        else:
            a[...] = a_x[0, :n]  # h_0 = 0: no product at the first step
        _activate_(a, 3 * H)
        i, f, o, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c_t = cs[t + 1, :n]
        np.multiply(f, cs[t, :n], out=c_t)
        np.multiply(i, g, out=ig[:n])
        c_t += ig[:n]
        np.tanh(c_t, out=tanh_c[t, :n])
        np.multiply(o, tanh_c[t, :n], out=hs[t + 1, :n])
    return hs[1:], (gates, cs, tanh_c, hs, n_active, W_hh, ws)


def lstm_backward(dh: np.ndarray, cache):
    """Gradients of lstm_forward.

    dh: (T, B, H) gradient of the loss w.r.t. each h_t from the layer above.
    Returns da_x: (T, B, 4H) and dW_hh: (H, 4H). Every factor that does not depend
    on the gradient flowing back is computed before the loop, over the whole
    block, so the loop is eight NumPy calls a step:

        dh_t = dh[t] + dh_next         dc_t = dc_next + dh_t * o (1 - tanh^2 c_t)
        [da_i, da_f, ., da_g] = dc_t * [g i', c_{t-1} f', ., i (1 - g^2)]
        da_o = dh_t * tanh(c_t) o'     dc_next = dc_t * f     dh_next = da_t W_hh^T

    where s' = s (1 - s) for each sigmoid gate. dW_hh is one matrix product over
    all steps after the loop.
    """
    gates, cs, tanh_c, hs, n_active, W_hh, ws = cache
    T, B, H = dh.shape
    k, dc_from_h = _lstm_factors(gates, cs, tanh_c, ws)  # (T, B, 4, H), (T, B, H)
    k_if, k_o, k_g = k[:, :, 0:2], k[:, :, 2], k[:, :, 3]  # (T, B, 2, H), (T, B, H), (T, B, H)
    f = gates[:, :, H : 2 * H]
    da_x = ws.zeros("da_x", gates.shape, dh.dtype)
    da4 = da_x.reshape(T, B, 4, H)
    da_if, da_o, da_g = da4[:, :, 0:2], da4[:, :, 2], da4[:, :, 3]  # views of da_x's gate blocks
    dh_next = ws.zeros("dh_next", (B, H), dh.dtype)  # gradient reaching h_t from step t + 1
    dc_next = ws.zeros("dc_next", (B, H), dh.dtype)  # gradient reaching c_t from step t + 1
    dh_t_buf = ws.empty("dh_t", (B, H), dh.dtype)  # the total gradient at h_t
    dc_t_buf = ws.empty("dc_t", (B, H), dh.dtype)  # the total gradient at c_t
    W_hh_T = transposed(W_hh, ws)
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        dh_t, dc_t = dh_t_buf[:n], dc_t_buf[:n]
        np.add(dh[t, :n], dh_next[:n], out=dh_t)
        np.multiply(dh_t, dc_from_h[t, :n], out=dc_t)  # through h_t = o tanh(c_t) ...
        dc_t += dc_next[:n]  # ... and through c_{t+1} = f c_t + ...
        np.multiply(dc_t[:, None, :], k_if[t, :n], out=da_if[t, :n])  # da_i, da_f in one call
        np.multiply(dc_t, k_g[t, :n], out=da_g[t, :n])
        np.multiply(dh_t, k_o[t, :n], out=da_o[t, :n])  # the output gate acts on h_t, not on c_t
        np.multiply(dc_t, f[t, :n], out=dc_next[:n])  # for step t - 1
        if t > 0:
            np.matmul(da_x[t, :n], W_hh_T, out=dh_next[:n])
    dW_hh = weight_grad(hs[1:-1], da_x[1:], ws)  # sum_t h_{t-1}^T da_t
    return da_x, dW_hh


def _lstm_factors(gates: np.ndarray, cs: np.ndarray, tanh_c: np.ndarray, ws: Workspace):
    """The backward pass's local derivatives, over the whole block at once.

    gates: (T, B, 4H) activated i, f, o, g; cs: (T + 1, B, H) with c_{t-1} at t;
    tanh_c: (T, B, H). Returns k: (T, B, 4, H) holding g i', c_{t-1} f', tanh(c_t) o'
    and i (1 - g^2), and dc_from_h: (T, B, H) = o (1 - tanh^2 c_t). Rows past
    n_active[t] are computed from zeros and never read.
    """
    T, B, H = tanh_c.shape
    g4 = gates.reshape(T, B, 4, H)
    i, _, o, g = (g4[:, :, j] for j in range(4))  # (T, B, H) views of the activated gates (f is not needed)
    k = ws.empty("k", g4.shape, g4.dtype)
    k_i, k_f, k_o, k_g = (k[:, :, j] for j in range(4))  # (T, B, H) views: each slot is built in place
    sigmoids = k[:, :, :3]  # k_i, k_f, k_o together: first each sigmoid's derivative s (1 - s)
    np.subtract(1.0, g4[:, :, :3], out=sigmoids)
    sigmoids *= g4[:, :, :3]
    k_i *= g  # g i'
    k_f *= cs[:T]  # c_{t-1} f'
    k_o *= tanh_c  # tanh(c_t) o'
    np.multiply(g, g, out=k_g)  # k_g = i (1 - g^2), in three steps
    np.subtract(1.0, k_g, out=k_g)
    k_g *= i
    dc_from_h = np.multiply(tanh_c, tanh_c, out=ws.empty("dc_from_h", tanh_c.shape, tanh_c.dtype))
    np.subtract(1.0, dc_from_h, out=dc_from_h)
    dc_from_h *= o  # o (1 - tanh^2 c_t)
    return k, dc_from_h


def lstm_step(a_x_t: np.ndarray, state: tuple, W_hh: np.ndarray) -> tuple:
    """One step for sampling. a_x_t: (B, 4H); state: (h_prev, c_prev), each (B, H)."""
    h_prev, c_prev = state
    H = h_prev.shape[1]
    a = a_x_t + h_prev @ W_hh  # (B, 4H)
    _activate_(a, 3 * H)
    i, f, o, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def gru_forward(a_x: np.ndarray, n_active: np.ndarray, W_hh: np.ndarray, ws: Workspace = FRESH):
    """Gated recurrent unit, gate blocks in the order r, z, n. With
    h_{t-1} W_hh = [hr, hz, hn] and a_x[t] = [a_r, a_z, a_n]:

        r = sigmoid(a_r + hr),   z = sigmoid(a_z + hz),   n = tanh(a_n + r * hn)
        h_t = (1 - z) * n + z * h_{t-1},   h_0 = 0.

    There is no separate recurrent bias: b is folded into a_x by the caller. In
    code the candidate n is called cand, leaving n for the count of active names.

    a_x: (T, B, 3H); n_active: (T,) int; W_hh: (H, 3H). Returns h: (T, B, H), a
    view of hs[1:] in the cache (gates, hW, hs, n_active, W_hh, ws), where
    hs: (T + 1, B, H) holds h_{t-1} at index t.
    """
    T, B, G_H = a_x.shape
    H = G_H // 3
    hs = ws.zeros("hs", (T + 1, B, H), a_x.dtype)
    gates = ws.zeros("gates", a_x.shape, a_x.dtype)  # (T, B, 3H) activated r, z, n; zero past n_active[t]
    hW = ws.zeros("hW", a_x.shape, a_x.dtype)  # (T, B, 3H) h_{t-1} W_hh, kept for hn
    for t in range(T):
        n = n_active[t]
        a, h_W = gates[t, :n], hW[t, :n]
        if t > 0:  # h_0 = 0, so hW[0] stays 0
            np.matmul(hs[t, :n], W_hh, out=h_W)  # (n, 3H)
        np.add(a_x[t, :n, : 2 * H], h_W[:, : 2 * H], out=a[:, : 2 * H])
        _activate_(a[:, : 2 * H], 2 * H)
        r, z, cand = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        np.multiply(r, h_W[:, 2 * H :], out=cand)
        cand += a_x[t, :n, 2 * H :]
        np.tanh(cand, out=cand)
        h_t = hs[t + 1, :n]
        np.subtract(hs[t, :n], cand, out=h_t)
        h_t *= z
        h_t += cand  # n + z (h_{t-1} - n)
    return hs[1:], (gates, hW, hs, n_active, W_hh, ws)


def _gru_factors(gates: np.ndarray, hW: np.ndarray, hs: np.ndarray, ws: Workspace):
    """The backward pass's local derivatives, over the whole block at once.

    gates: (T, B, 3H) activated r, z, n; hW: (T, B, 3H) h_{t-1} W_hh; hs: (T + 1, B, H)
    with h_{t-1} at t. Returns k: (T, B, 3, H), the factors that turn dh_t into the
    gradient w.r.t. [hr, hz, hn]: (1 - z)(1 - n^2) hn r', (h_{t-1} - n) z' and
    (1 - z)(1 - n^2) r; and da_n_per_dh: (T, B, H) = (1 - z)(1 - n^2).
    """
    T, B, G_H = gates.shape
    H = G_H // 3
    r, z, cand = gates[:, :, :H], gates[:, :, H : 2 * H], gates[:, :, 2 * H :]
    hn = hW[:, :, 2 * H :]  # h_{t-1} W_hh's share of the candidate
    k = ws.empty("k", (T, B, 3, H), gates.dtype)
    k_r, k_z, k_n = k[:, :, 0], k[:, :, 1], k[:, :, 2]
    one_minus_z = np.subtract(1.0, z, out=ws.empty("one_minus_z", (T, B, H), gates.dtype))
    da_n_per_dh = np.multiply(cand, cand, out=ws.empty("da_n_per_dh", (T, B, H), gates.dtype))
    np.subtract(1.0, da_n_per_dh, out=da_n_per_dh)
    da_n_per_dh *= one_minus_z  # (1 - z)(1 - n^2)
    np.subtract(hs[:T], cand, out=k_z)
    k_z *= z
    k_z *= one_minus_z  # (h_{t-1} - n) z (1 - z)
    np.subtract(1.0, r, out=k_r)
    k_r *= r
    k_r *= da_n_per_dh
    k_r *= hn  # hn r (1 - r) (1 - z)(1 - n^2)
    np.multiply(da_n_per_dh, r, out=k_n)  # r (1 - z)(1 - n^2)
    return k, da_n_per_dh


def gru_backward(dh: np.ndarray, cache):
    """Gradients of gru_forward.

    dh: (T, B, H) gradient of the loss w.r.t. each h_t from the layer above.
    Returns da_x: (T, B, 3H) and dW_hh: (H, 3H). Every local derivative that does
    not depend on the gradient flowing back is computed once over the block
    (_gru_factors); the loop only carries dh back through time, storing each step's
    total dh_t and its gradient w.r.t. h_{t-1} W_hh in dhW (equal to da_x in the r
    and z blocks, and r * da_n in the n block). da_n and dW_hh are one operation
    each over all steps after the loop.
    """
    gates, hW, hs, n_active, W_hh, ws = cache
    T, B, H = dh.shape
    k, da_n_per_dh = _gru_factors(gates, hW, hs, ws)
    z = gates[:, :, H : 2 * H]
    dh_total = ws.zeros("dh_total", (T, B, H), dh.dtype)  # dh_t: from above plus from step t + 1
    dhW = ws.zeros("dhW", (T, B, 3, H), dh.dtype)  # gradient w.r.t. [hr, hz, hn] of h_{t-1} W_hh
    dh_next = ws.zeros("dh_next", (B, H), dh.dtype)  # gradient reaching h_t from step t + 1
    direct_buf = ws.empty("direct", (B, H), dh.dtype)
    W_hh_T = transposed(W_hh, ws)
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        dh_t = dh_total[t, :n]
        np.add(dh[t, :n], dh_next[:n], out=dh_t)
        np.multiply(dh_t[:, None, :], k[t, :n], out=dhW[t, :n])  # (n, 3, H)
        if t > 0:
            np.matmul(dhW[t, :n].reshape(n, 3 * H), W_hh_T, out=dh_next[:n])
            np.multiply(dh_t, z[t, :n], out=direct_buf[:n])
            dh_next[:n] += direct_buf[:n]  # plus the direct path z * h_{t-1}
    dhW = dhW.reshape(T, B, 3 * H)
    da_x = ws.empty("da_x", (T, B, 3 * H), dh.dtype)
    np.copyto(da_x[:, :, : 2 * H], dhW[:, :, : 2 * H])
    np.multiply(dh_total, da_n_per_dh, out=da_x[:, :, 2 * H :])  # da_n
    dW_hh = weight_grad(hs[1:-1], dhW[1:], ws)  # sum_t h_{t-1}^T dhW_t
    return da_x, dW_hh


def gru_step(a_x_t: np.ndarray, state: tuple, W_hh: np.ndarray) -> tuple:
    """One step for sampling. a_x_t: (B, 3H); state: (h_prev,) with h_prev: (B, H)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    h_W = h_prev @ W_hh  # (B, 3H)
    rz = a_x_t[:, : 2 * H] + h_W[:, : 2 * H]  # (B, 2H)
    _activate_(rz, 2 * H)
    r, z = rz[:, :H], rz[:, H:]
    cand = np.tanh(a_x_t[:, 2 * H :] + r * h_W[:, 2 * H :])
    return (cand + z * (h_prev - cand),)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: its forward/backward pair over a block, and its sampling step."""

    gates: int  # G: W_xh is (D, G*H), W_hh is (H, G*H)
    state_arrays: int  # arrays in the state tuple (h only, or h and c)
    forward: Callable
    backward: Callable
    step: Callable

    def initial_state(self, batch: int, hidden: int, dtype) -> tuple:
        """The state before the first character: zeros, each array (batch, hidden)."""
        return tuple(np.zeros((batch, hidden), dtype=dtype) for _ in range(self.state_arrays))


CELLS: dict[str, Cell] = {
    "rnn": Cell(1, 1, rnn_forward, rnn_backward, rnn_step),
    "lstm": Cell(4, 2, lstm_forward, lstm_backward, lstm_step),
    "gru": Cell(3, 1, gru_forward, gru_backward, gru_step),
}
