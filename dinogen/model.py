"""The character model: stacked recurrent layers and a softmax over the vocabulary.

    a_x = x_t W_xh + b_h             (a row lookup for the first layer)
    h_t = cell(a_x, h_{t-1}, W_hh)   (the only loop over time)
    p_t = softmax(h_t W_hy + b_y)    loss = mean cross-entropy over real predictions

Parameters live in a plain dict of arrays, keyed "W_xh.0", "W_hh.0", "b_h.0"
(one trio per layer), "W_hy" and "b_y"; the grads dict has the same keys.
Shapes: V vocabulary, H hidden, G gates of the cell, T, B and N as in data.Batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dinogen.cells import CELLS
from dinogen.data import Batch, Dataset, iter_eval_batches
from dinogen.layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dense_backward,
    dense_forward,
    lookup_backward,
    lookup_forward,
)


@dataclass
class ModelConfig:
    vocab_size: int  # V: characters + the boundary token
    cell: str = "rnn"  # recurrent cell: rnn | gru | lstm (a key of cells.CELLS)
    hidden: int = 128  # H: units per recurrent layer
    layers: int = 1  # stacked recurrent layers

    def to_dict(self) -> dict:
        return asdict(self)


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in a fixed order."""
    G, H, V = CELLS[cfg.cell].gates, cfg.hidden, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(cfg.layers):
        shapes[f"W_xh.{layer}"] = (V if layer == 0 else H, G * H)
        shapes[f"W_hh.{layer}"] = (H, G * H)
        shapes[f"b_h.{layer}"] = (G * H,)
    shapes["W_hy"] = (H, V)
    shapes["b_y"] = (V,)
    return shapes


def init_params(cfg: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Small random weights: uniform(+-1/sqrt(H)) in the recurrence, a smaller
    output layer so that an untrained model predicts close to uniformly (loss ln V),
    zero biases except an LSTM's forget gate, which starts at 1."""
    scale = 1.0 / np.sqrt(cfg.hidden)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.startswith("b_"):
            params[name] = np.zeros(shape, dtype=dtype)
        elif name == "W_hy":
            params[name] = (0.1 * scale * rng.standard_normal(shape)).astype(dtype)
        else:
            params[name] = rng.uniform(-scale, scale, shape).astype(dtype)
    if cfg.cell == "lstm":
        for layer in range(cfg.layers):
            params[f"b_h.{layer}"][cfg.hidden : 2 * cfg.hidden] = 1.0  # forget gate open: remember by default
    return params


def forward(params: dict[str, np.ndarray], cfg: ModelConfig, batch: Batch):
    """Per-prediction negative log-likelihoods of a batch.

    Returns nll: (N,) in nats, in the order of batch.real, and the cache for backward.
    """
    cell = CELLS[cfg.cell]
    layer_caches = []
    h = None
    for layer in range(cfg.layers):
        W_xh, W_hh, b_h = params[f"W_xh.{layer}"], params[f"W_hh.{layer}"], params[f"b_h.{layer}"]
        if layer == 0:
            a_x, in_cache = lookup_forward(batch.x, W_xh, b_h, batch.real)  # (T, B, G*H)
        else:
            a_x, in_cache = dense_forward(h, W_xh, b_h)  # (T, B, G*H)
        h, cell_cache = cell.forward(a_x, batch.n_active, W_hh)  # (T, B, H)
        layer_caches.append((in_cache, cell_cache))
    T, B, H = h.shape
    h_real = h.reshape(T * B, H)[batch.real]  # (N, H)
    logits, out_cache = dense_forward(h_real, params["W_hy"], params["b_y"])  # (N, V)
    nll, loss_cache = cross_entropy_forward(logits, batch.y.ravel()[batch.real])
    return nll, (cfg, batch, h.shape, layer_caches, out_cache, loss_cache)


def backward(dnll: np.ndarray, cache) -> dict[str, np.ndarray]:
    """Gradients of every parameter given dnll: (N,), the loss gradient per prediction."""
    cfg, batch, h_shape, layer_caches, out_cache, loss_cache = cache
    cell = CELLS[cfg.cell]
    grads = {}
    dlogits = cross_entropy_backward(dnll, loss_cache)
    dh_real, grads["W_hy"], grads["b_y"] = dense_backward(dlogits, out_cache)
    T, B, H = h_shape
    dh = np.zeros((T * B, H), dtype=dh_real.dtype)
    dh[batch.real] = dh_real
    dh = dh.reshape(T, B, H)
    for layer in range(cfg.layers - 1, -1, -1):
        in_cache, cell_cache = layer_caches[layer]
        da_x, grads[f"W_hh.{layer}"] = cell.backward(dh, cell_cache)
        if layer == 0:
            grads[f"W_xh.{layer}"], grads[f"b_h.{layer}"] = lookup_backward(da_x, in_cache)
        else:
            dh, grads[f"W_xh.{layer}"], grads[f"b_h.{layer}"] = dense_backward(da_x, in_cache)
    return grads


def loss_and_grads(params: dict[str, np.ndarray], cfg: ModelConfig, batch: Batch):
    """Mean NLL per real prediction of the batch, and its gradients."""
    nll, cache = forward(params, cfg, batch)
    dnll = np.full_like(nll, 1.0 / len(nll))
    return float(nll.mean()), backward(dnll, cache)


def count_params(params: dict[str, np.ndarray]) -> int:
    return int(sum(p.size for p in params.values()))


def total_nll(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset, idx: np.ndarray) -> tuple[float, int]:
    """Summed NLL (nats) and number of predictions over the names idx (L + 1 each)."""
    total, count = 0.0, 0
    for batch in iter_eval_batches(data, idx):
        nll, _ = forward(params, cfg, batch)
        total += float(nll.sum(dtype=np.float64))
        count += len(nll)
    return total, count
