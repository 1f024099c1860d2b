"""The model written to be read: one time step at a time, one line per equation.

Start here. This module computes exactly what the fast path computes (cells.py,
layers.py and model.py: the same loss and the same gradients, proven equal in
float64 by tests/test_reference.py), but in the plainest NumPy there is: each
cell is a pair in the CS231n manner,

    step_forward(x, state, W_xh, W_hh, b) -> (state, cache)
    step_backward(dstate, cache) -> (dx, dstate_prev, dW_xh, dW_hh, db)

and forward/backward below run them over a whole padded batch, time step by
time step, layer by layer. The fast path is the same arithmetic rearranged so
that everything that does not depend on the previous step runs once over the
whole (T, B) block, outside the time loop, into reused buffers.

Shapes: B names in the batch, D input width (V for a one-hot character, E for an
embedding, H for the layer below), H hidden units, V vocabulary, T time steps,
K categories. A state is a tuple: (h,) for the RNN and the GRU, (h, c) for the LSTM.

A model with categories reads each name's category as a one-hot beside its
character at every step, as the PyTorch names tutorial concatenates them: the
first layer's input is [e_t | onehot(c)] and its weights [W_xh.0 ; W_cat].

The few pieces a learner most often gets wrong (the targets, the padding mask,
the softmax, the += across time, a cell's step) are small functions gathered in
Parts; forward takes them as an argument, CORRECT by default, and dinogen/bugs.py
swaps one at a time for its classic mistake (`dinogen gradcheck --bug`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from dinogen.data import PAD, Batch
from dinogen.config import ModelConfig


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


# ---- what every cell's step shares: pre-activations x W_xh + b and h_prev W_hh -----


def affine_backward(dax, dah, x, h_prev, W_xh, W_hh):
    """Back through a step's pre-activations x W_xh + b and h_prev W_hh.

    dax: (B, G*H) the gradient reaching the input side, dah: (B, G*H) the previous
    state's side (the same array for the RNN and the LSTM, whose pre-activation is
    their sum; the GRU scales its candidate's share by r). Returns dx: (B, D),
    dh_prev: (B, H), dW_xh, dW_hh and db.
    """
    dx = dax @ W_xh.T  # to the input
    dh_prev = dah @ W_hh.T  # to the previous step
    dW_xh = x.T @ dax
    dW_hh = h_prev.T @ dah  # from h_{t-1}, the factor W_hh multiplied (not from dh)
    db = dax.sum(axis=0)
    return dx, dh_prev, dW_xh, dW_hh, db


# ---- vanilla RNN ---------------------------------------------------------------


def rnn_step_forward(x, state, W_xh, W_hh, b):
    """x: (B, D), state: (h_prev,) with h_prev (B, H); W_xh: (D, H), W_hh: (H, H), b: (H,)."""
    (h_prev,) = state
    h = np.tanh(x @ W_xh + h_prev @ W_hh + b)  # the new hidden state, (B, H)
    return (h,), (x, h_prev, W_xh, W_hh, h)


def rnn_step_backward(dstate, cache):
    """dstate: (dh,), the gradient reaching h from above and from the next step."""
    (dh,) = dstate
    x, h_prev, W_xh, W_hh, h = cache
    da = dh * (1 - h**2)  # through tanh: its derivative from the output h, 1 - tanh^2
    dx, dh_prev, dW_xh, dW_hh, db = affine_backward(da, da, x, h_prev, W_xh, W_hh)
    return dx, (dh_prev,), dW_xh, dW_hh, db


# ---- LSTM: gates i, f, o, g side by side in W_xh, W_hh and b, each H wide ------


def lstm_step_forward(x, state, W_xh, W_hh, b):
    """x: (B, D), state: (h_prev, c_prev), each (B, H); W_xh: (D, 4H), W_hh: (H, 4H), b: (4H,)."""
    h_prev, c_prev = state
    H = h_prev.shape[1]
    a = x @ W_xh + h_prev @ W_hh + b  # all four pre-activations, (B, 4H)
    i = sigmoid(a[:, :H])  # input gate: how much of the candidate to write
    f = sigmoid(a[:, H : 2 * H])  # forget gate: how much of the old cell to keep
    o = sigmoid(a[:, 2 * H : 3 * H])  # output gate: how much of the cell to show
    g = np.tanh(a[:, 3 * H :])  # the candidate values
    c = f * c_prev + i * g  # the new cell state
    tanh_c = np.tanh(c)
    h = o * tanh_c  # the new hidden state
    return (h, c), (x, h_prev, c_prev, W_xh, W_hh, i, f, o, g, tanh_c)


def lstm_step_backward(dstate, cache):
    """dstate: (dh, dc), the gradients reaching h and c from above and from the next step."""
    dh, dc = dstate
    x, h_prev, c_prev, W_xh, W_hh, i, f, o, g, tanh_c = cache
    do = dh * tanh_c  # h = o tanh(c)
    dc = dc + dh * o * (1 - tanh_c**2)  # c reaches the loss through h too
    di = dc * g  # c = f c_prev + i g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f  # to the previous step's cell
    da = np.concatenate([di * i * (1 - i),  # through the sigmoids: s' = s (1 - s)
                         df * f * (1 - f),
                         do * o * (1 - o),
                         dg * (1 - g**2)], axis=1)  # through tanh: 1 - g^2; (B, 4H)
    dx, dh_prev, dW_xh, dW_hh, db = affine_backward(da, da, x, h_prev, W_xh, W_hh)
    return dx, (dh_prev, dc_prev), dW_xh, dW_hh, db


# ---- GRU: gates r, z, n side by side; b sits on the input side only ------------


def gru_step_forward(x, state, W_xh, W_hh, b):
    """x: (B, D), state: (h_prev,) with h_prev (B, H); W_xh: (D, 3H), W_hh: (H, 3H), b: (3H,)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    ax = x @ W_xh + b  # the input's share of every pre-activation, (B, 3H)
    ah = h_prev @ W_hh  # the previous state's share, (B, 3H)
    r = sigmoid(ax[:, :H] + ah[:, :H])  # reset gate: how much of h_prev the candidate sees
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])  # update gate: how much of h_prev to keep
    n = np.tanh(ax[:, 2 * H :] + r * ah[:, 2 * H :])  # the candidate state
    h = (1 - z) * n + z * h_prev  # the new hidden state
    return (h,), (x, h_prev, W_xh, W_hh, ah, r, z, n)


def gru_step_backward(dstate, cache):
    """dstate: (dh,), the gradient reaching h from above and from the next step."""
    (dh,) = dstate
    x, h_prev, W_xh, W_hh, ah, r, z, n = cache
    H = h_prev.shape[1]
    dn = dh * (1 - z)  # h = (1 - z) n + z h_prev
    dz = dh * (h_prev - n)
    dh_direct = dh * z  # the direct path to the previous step
    dan = dn * (1 - n**2)  # through tanh
    dr = dan * ah[:, 2 * H :]  # n = tanh(ax_n + r ah_n)
    dah_n = dan * r
    dar = dr * r * (1 - r)  # through the sigmoids
    daz = dz * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)  # the input side of each pre-activation, (B, 3H)
    dah = np.concatenate([dar, daz, dah_n], axis=1)  # the previous state's side, (B, 3H)
    dx, dh_gates, dW_xh, dW_hh, db = affine_backward(dax, dah, x, h_prev, W_xh, W_hh)
    return dx, (dh_direct + dh_gates,), dW_xh, dW_hh, db  # h_prev reaches h directly and through the gates


STEPS = {  # cell -> (step_forward, step_backward, arrays in its state)
    "rnn": (rnn_step_forward, rnn_step_backward, 1),
    "lstm": (lstm_step_forward, lstm_step_backward, 2),
    "gru": (gru_step_forward, gru_step_backward, 1),
}


# ---- the pieces of the whole model that dinogen.bugs can swap for a mistake ----


def next_characters(x: np.ndarray) -> np.ndarray:
    """(T, B) inputs -> (T, B) targets: each step predicts what the next step reads.

    Where a name has ended, its input is the boundary token, so its last target is
    the end of the name; the targets at padded positions are masked by real_predictions.
    """
    return np.roll(x, -1, axis=0)  # y[t] = x[t + 1]: shifted along axis 0, time


def real_predictions(batch: Batch) -> np.ndarray:
    """(T, B) bool: where a prediction is made, not padding."""
    return batch.y != PAD


def softmax(logits: np.ndarray) -> np.ndarray:
    """(B, V) logits -> (B, V) probabilities of the next character."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # stable: the largest logit becomes 0
    return np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)  # over axis 1, the vocabulary


def add(total, value):
    """A weight's gradient so far plus one time step's share of it."""
    return total + value  # += across time: every step used the same weights


@dataclass(frozen=True)
class Parts:
    """The pieces of forward and backward that a learner most often gets wrong, each
    replaceable: dinogen.bugs swaps one for its classic mistake, the rest unchanged."""

    steps: Mapping[str, tuple]  # cell -> (step_forward, step_backward, arrays in its state), as STEPS
    targets: Callable[[np.ndarray], np.ndarray]  # as next_characters
    real: Callable[[Batch], np.ndarray]  # as real_predictions
    softmax: Callable[[np.ndarray], np.ndarray]  # as softmax
    accumulate: Callable  # as add


CORRECT = Parts(STEPS, next_characters, real_predictions, softmax, add)


# ---- the whole model over a padded batch ---------------------------------------


def forward(params: dict[str, np.ndarray], cfg: ModelConfig, batch: Batch, parts: Parts = CORRECT):
    """Mean negative log-likelihood per real prediction of a padded batch (no dropout).

    batch.x, batch.y: (T, B) time-major tokens; y is PAD where a name has ended, and
    those positions count nowhere. Returns the loss and the cache for backward.
    """
    step_forward, _, n_state = parts.steps[cfg.cell]
    T, B = batch.x.shape
    V, H = cfg.vocab_size, cfg.hidden
    y = parts.targets(batch.x)  # (T, B) the character to predict at each step
    real = parts.real(batch)  # (T, B) where a prediction is made
    N = real.sum()  # real predictions in the batch
    states = [tuple(np.zeros((B, H)) for _ in range(n_state)) for _ in range(cfg.layers)]
    caches, loss = [], 0.0
    for t in range(T):
        one_hot = np.eye(V)[batch.x[t]]  # (B, V) the characters read at step t
        inp = one_hot @ params["W_emb"] if cfg.embed_dim else one_hot  # (B, E) or (B, V)
        if cfg.categories:
            inp = np.hstack([inp, np.eye(cfg.categories)[batch.cats]])  # (B, D + K) the category beside it
        step_caches = []
        for layer in range(cfg.layers):
            W_xh, W_hh, b = params[f"W_xh.{layer}"], params[f"W_hh.{layer}"], params[f"b_h.{layer}"]
            if layer == 0 and cfg.categories:
                W_xh = np.vstack([W_xh, params["W_cat"]])  # (D + K, G*H) its weights below the character's
            states[layer], cache = step_forward(inp, states[layer], W_xh, W_hh, b)
            step_caches.append(cache)
            inp = states[layer][0]  # this layer's h feeds the next
        p = parts.softmax(inp @ params["W_hy"] + params["b_y"])  # (B, V)
        loss += -(np.log(p[np.arange(B), y[t]]) * real[t]).sum() / N  # padded positions add nothing
        caches.append((one_hot, step_caches, inp, p, y[t]))
    return loss, (params, cfg, parts, real, N, caches)


def backward(cache) -> dict[str, np.ndarray]:
    """Gradients of forward's loss w.r.t. every parameter, by backpropagation through time."""
    params, cfg, parts, real, N, caches = cache
    _, step_backward, n_state = parts.steps[cfg.cell]
    grads: dict[str, np.ndarray] = {}

    def accumulate(name, value):
        grads[name] = parts.accumulate(grads.get(name, 0.0), value)

    B, H = real.shape[1], cfg.hidden
    dstates = [tuple(np.zeros((B, H)) for _ in range(n_state)) for _ in range(cfg.layers)]  # from step t + 1
    for t in reversed(range(len(caches))):
        one_hot, step_caches, h_top, p, target = caches[t]
        dlogits = p.copy()
        dlogits[np.arange(B), target] -= 1  # softmax with cross-entropy: p - onehot(y)
        dlogits *= real[t][:, None] / N  # the mean over real predictions; nothing from padding
        accumulate("W_hy", h_top.T @ dlogits)
        accumulate("b_y", dlogits.sum(axis=0))
        dh_above = dlogits @ params["W_hy"].T  # (B, H) the gradient reaching the top layer's h
        for layer in reversed(range(cfg.layers)):
            dh, *rest = dstates[layer]
            dx, dstates[layer], dW_xh, dW_hh, db = step_backward((dh + dh_above, *rest), step_caches[layer])
            if layer == 0 and cfg.categories:
                D = params["W_xh.0"].shape[0]
                accumulate("W_cat", dW_xh[D:])  # the category's rows of the stacked weights
                dW_xh, dx = dW_xh[:D], dx[:, :D]  # the character's; nothing flows into a one-hot
            accumulate(f"W_xh.{layer}", dW_xh)
            accumulate(f"W_hh.{layer}", dW_hh)
            accumulate(f"b_h.{layer}", db)
            dh_above = dx  # the gradient reaching the layer below, through its h
        if cfg.embed_dim:
            accumulate("W_emb", one_hot.T @ dh_above)
    return grads
