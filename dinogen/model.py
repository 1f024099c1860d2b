"""The character model: stacked recurrent layers and a softmax over the vocabulary.

    e_t = W_emb[x_t]                 (optional embedding, a row lookup)
    a_x = e_t W_xh + b_h             (a row lookup into W_xh without an embedding)
        + W_cat[c]                   (with categories: the name's category c, at every step)
    h_t = cell(a_x, h_{t-1}, W_hh)   (the only loop over time)
    p_t = softmax(h_t W_hy + b_y)    loss = mean cross-entropy over real predictions

dinogen/reference.py computes the same loss and gradients one time step at a
time, one line per equation: the place to start reading.

Inverted dropout, when on, acts on the non-recurrent connections only: after the
embedding, between layers and before the output layer; never in the recurrence.

Parameters live in a plain dict of arrays, keyed "W_emb" (with an embedding),
"W_cat" (with categories), "W_xh.0", "W_hh.0", "b_h.0" (one trio per layer),
"W_hy" and "b_y"; the grads dict has the same keys. Shapes: V vocabulary, E
embedding, H hidden, G gates of the cell, K categories, T, B and N as in
data.Batch.
"""

from __future__ import annotations

import numpy as np

from dinogen.cells import CELLS
from dinogen.config import ModelConfig
from dinogen.data import Batch, Dataset, eval_positions, iter_eval_batches
from dinogen.layers import (
    category_backward,
    category_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dense_backward,
    dense_forward,
    dropout_backward,
    dropout_forward,
    lookup_backward,
    lookup_forward,
)
from dinogen.workspace import FRESH, Workspace


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in a fixed order."""
    G, H, V = CELLS[cfg.cell].gates, cfg.hidden, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.embed_dim:
        shapes["W_emb"] = (V, cfg.embed_dim)
    if cfg.categories:
        shapes["W_cat"] = (cfg.categories, G * H)
    for layer in range(cfg.layers):
        inputs = H if layer > 0 else cfg.embed_dim or V
        shapes[f"W_xh.{layer}"] = (inputs, G * H)
        shapes[f"W_hh.{layer}"] = (H, G * H)
        shapes[f"b_h.{layer}"] = (G * H,)
    shapes["W_hy"] = (H, V)
    shapes["b_y"] = (V,)
    return shapes


def init_params(cfg: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Small random weights: uniform(+-1/sqrt(H)) in the recurrence, a smaller
    output layer so that an untrained model predicts close to uniformly (loss ln V),
    zero biases except an LSTM's forget gate, which starts at 1, and zero category
    rows, so that an untrained model treats every category alike."""
    scale = 1.0 / np.sqrt(cfg.hidden)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.startswith("b_") or name == "W_cat":
            params[name] = np.zeros(shape, dtype=dtype)
        elif name == "W_hy":
            params[name] = (0.1 * scale * rng.standard_normal(shape)).astype(dtype)
        elif name == "W_emb":
            params[name] = rng.standard_normal(shape).astype(dtype)
        else:
            params[name] = rng.uniform(-scale, scale, shape).astype(dtype)
    if cfg.cell == "lstm":
        for layer in range(cfg.layers):
            params[f"b_h.{layer}"][cfg.hidden : 2 * cfg.hidden] = 1.0  # forget gate open: remember by default
    return params


def forward(params: dict[str, np.ndarray], cfg: ModelConfig, batch: Batch,
            rng: np.random.Generator | None = None, ws: Workspace = FRESH):
    """Per-prediction negative log-likelihoods of a batch.

    Dropout is on when rng is given and cfg.dropout > 0 (training); the same rng
    state gives the same masks. The arrays of the pass come from ws (fresh ones by
    default; the trainer reuses one workspace at every step). Returns nll: (N,)
    in nats, in the order of batch.real, and the cache for backward.
    """
    cell = CELLS[cfg.cell]
    drop = cfg.dropout if rng is not None else 0.0
    masks = {}  # where dropout acted -> its mask

    def dropped(x, where):
        if not drop:
            return x
        out, masks[where] = dropout_forward(x, drop, rng, ws.scope(f"dropout.{where}"))
        return out

    layer_caches = []
    emb_cache = cat_cache = None
    h = None
    for layer in range(cfg.layers):
        W_xh, W_hh, b_h = params[f"W_xh.{layer}"], params[f"W_hh.{layer}"], params[f"b_h.{layer}"]
        in_ws = ws.scope(f"input.{layer}")
        if layer == 0 and cfg.embed_dim:
            e, emb_cache = lookup_forward(batch.x, params["W_emb"], None, batch.real, ws.scope("embedding"))  # (T, B, E)
            a_x, in_cache = dense_forward(dropped(e, "emb"), W_xh, b_h, in_ws)  # (T, B, G*H)
        elif layer == 0:
            a_x, in_cache = lookup_forward(batch.x, W_xh, b_h, batch.real, in_ws)  # (T, B, G*H)
        else:
            a_x, in_cache = dense_forward(dropped(h, layer - 1), W_xh, b_h, in_ws)  # (T, B, G*H)
        if layer == 0 and cfg.categories:
            a_x, cat_cache = category_forward(a_x, params["W_cat"], batch.cats)
        h, cell_cache = cell.forward(a_x, batch.n_active, W_hh, ws.scope(f"cell.{layer}"))  # (T, B, H)
        layer_caches.append((in_cache, cell_cache))
    T, B, H = h.shape
    h_real = ws.empty("h_real", (batch.n_predictions, H), h.dtype)
    np.take(h.reshape(T * B, H), batch.real, axis=0, out=h_real, mode="clip")  # (N, H)
    logits, out_cache = dense_forward(dropped(h_real, "out"), params["W_hy"], params["b_y"], ws.scope("output"))  # (N, V)
    nll, loss_cache = cross_entropy_forward(logits, batch.y.ravel()[batch.real], ws.scope("loss"))
    return nll, (cfg, batch, h.shape, emb_cache, cat_cache, layer_caches, masks, out_cache, loss_cache, ws)


def backward(dnll: np.ndarray, cache) -> dict[str, np.ndarray]:
    """Gradients of every parameter given dnll: (N,), the loss gradient per prediction.

    When forward was given a reusing workspace, the gradients live in it too: they
    are valid until the next forward pass with that workspace.
    """
    cfg, batch, h_shape, emb_cache, cat_cache, layer_caches, masks, out_cache, loss_cache, ws = cache
    cell = CELLS[cfg.cell]

    def undropped(dx, where):
        return dropout_backward(dx, masks[where]) if where in masks else dx

    grads = {}
    dlogits = cross_entropy_backward(dnll, loss_cache)
    dh_real, grads["W_hy"], grads["b_y"] = dense_backward(dlogits, out_cache)
    T, B, H = h_shape
    dh = ws.zeros("dh", (T * B, H), dh_real.dtype)
    dh[batch.real] = undropped(dh_real, "out")
    dh = dh.reshape(T, B, H)
    for layer in range(cfg.layers - 1, -1, -1):
        in_cache, cell_cache = layer_caches[layer]
        da_x, grads[f"W_hh.{layer}"] = cell.backward(dh, cell_cache)
        if layer == 0 and cfg.categories:
            grads["W_cat"] = category_backward(da_x, cat_cache)
        if layer == 0 and not cfg.embed_dim:
            grads["W_xh.0"], grads["b_h.0"] = lookup_backward(da_x, in_cache)
            continue
        dx, grads[f"W_xh.{layer}"], grads[f"b_h.{layer}"] = dense_backward(da_x, in_cache)
        if layer > 0:
            dh = undropped(dx, layer - 1)
        else:
            grads["W_emb"], _ = lookup_backward(undropped(dx, "emb"), emb_cache)
    return grads


def input_table(params: dict[str, np.ndarray], cfg: ModelConfig) -> np.ndarray:
    """The first layer's input pre-activation for every token: (V, G*H).

    With an embedding that is W_emb W_xh.0 + b_h.0, so that a sampling step looks
    one row up instead of multiplying (N, E) by (E, G*H); without one, W_xh.0 + b_h.0.
    """
    W_xh = params["W_xh.0"]
    if cfg.embed_dim:
        W_xh = params["W_emb"] @ W_xh  # (V, G*H)
    return W_xh + params["b_h.0"]


def step(params: dict[str, np.ndarray], cfg: ModelConfig, x: np.ndarray, states: list[tuple],
         table: np.ndarray | None = None, cats: np.ndarray | None = None):
    """One time step of the whole stack, for sampling (no dropout).

    x: (N,) int tokens; states: one state tuple per layer, each array (N, H);
    table: input_table(params, cfg), which a caller making many steps computes once;
    cats: (N,) int category of each row, for a model with categories.
    Returns logits: (N, V) and the new states.
    """
    cell = CELLS[cfg.cell]
    table = input_table(params, cfg) if table is None else table
    new_states = []
    h = None
    for layer in range(cfg.layers):
        a_x = table[x] if layer == 0 else h @ params[f"W_xh.{layer}"] + params[f"b_h.{layer}"]  # (N, G*H)
        if layer == 0 and cfg.categories:
            a_x += params["W_cat"][cats]
        state = cell.step(a_x, states[layer], params[f"W_hh.{layer}"])
        new_states.append(state)
        h = state[0]
    return h @ params["W_hy"] + params["b_y"], new_states


def initial_states(cfg: ModelConfig, n: int, dtype) -> list[tuple]:
    """Zero states for n names, one tuple per layer."""
    cell = CELLS[cfg.cell]
    return [cell.initial_state(n, cfg.hidden, dtype) for _ in range(cfg.layers)]


def loss_and_grads(params: dict[str, np.ndarray], cfg: ModelConfig, batch: Batch,
                   rng: np.random.Generator | None = None, ws: Workspace = FRESH):
    """Mean NLL per real prediction of the batch, and its gradients (dropout on when rng is given)."""
    nll, cache = forward(params, cfg, batch, rng, ws)
    dnll = np.full_like(nll, 1.0 / len(nll))
    return float(nll.mean()), backward(dnll, cache)


def count_params(params: dict[str, np.ndarray]) -> int:
    return int(sum(p.size for p in params.values()))


def nll_per_name(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset, idx: np.ndarray) -> np.ndarray:
    """(len(idx),) float64 NLL of each of the distinct names idx, in nats, its end included; dropout off."""
    idx = np.asarray(idx)
    totals = np.zeros(len(data))  # by name; only idx is filled
    ws = Workspace()  # the batches' arrays, reused from batch to batch
    for batch in iter_eval_batches(data, idx, max_positions=eval_positions(cfg.vocab_size)):
        nll, _ = forward(params, cfg, batch, ws=ws)  # (P,) in the order of batch.real
        width = batch.x.shape[1]
        columns = batch.real % width  # (P,) the batch column of each prediction
        totals[batch.names] += np.bincount(columns, weights=nll, minlength=width)
    return totals[idx]


def total_nll(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset, idx: np.ndarray) -> tuple[float, int]:
    """Summed NLL (nats) and number of predictions over the distinct names idx (L + 1 each)."""
    idx = np.asarray(idx)
    return float(nll_per_name(params, cfg, data, idx).sum()), int(data.lengths[idx].sum()) + len(idx)
