"""Layers that run once over the whole (T, B) block, outside the time loop.

Each is a forward/backward pair in the CS231n manner. Shapes: T time steps,
B names, N real (unpadded) predictions, V vocabulary size, D input width,
M output width.
"""

from __future__ import annotations

import numpy as np


def lookup_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, real: np.ndarray):
    """Row lookup instead of a one-hot product: out[t, i] = W[x[t, i]] (+ b).

    x: (T, B) int; W: (V, M); b: (M,) or None (an embedding has no bias);
    real: (N,) flat indices of real positions. Returns out: (T, B, M).
    """
    out = W[x]  # (T, B, M)
    if b is not None:
        out += b
    return out, (x, real, W.shape)


def lookup_backward(dout: np.ndarray, cache):
    """Gradients of lookup_forward: rows of dW accumulate dout at every use.

    The scatter-add sorts the token ids once and sums runs with np.add.reduceat,
    which is many times faster than np.add.at. Returns dW: (V, M) and db: (M,),
    which a lookup without bias ignores.
    """
    x, real, shape = cache
    M = dout.shape[-1]
    tokens = x.ravel()[real]  # (N,)
    drows = dout.reshape(-1, M)[real]  # (N, M)
    order = np.argsort(tokens, kind="stable")
    tokens = tokens[order]
    starts = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])
    dW = np.zeros(shape, dtype=dout.dtype)
    dW[tokens[starts]] = np.add.reduceat(drows[order], starts, axis=0)
    db = drows.sum(axis=0)
    return dW, db


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray):
    """out = x W + b over any leading shape. x: (..., D); W: (D, M); b: (M,)."""
    out = x @ W
    out += b
    return out, (x, W)


def dense_backward(dout: np.ndarray, cache):
    """Gradients of dense_forward. Returns dx: (..., D), dW: (D, M), db: (M,)."""
    x, W = cache
    D, M = W.shape
    x2, dout2 = x.reshape(-1, D), dout.reshape(-1, M)
    dx = (dout2 @ W.T).reshape(x.shape)
    return dx, x2.T @ dout2, dout2.sum(axis=0)


def cross_entropy_forward(logits: np.ndarray, y: np.ndarray):
    """Negative log-likelihood of each target under a softmax over the vocabulary.

    logits: (N, V); y: (N,) int. Returns nll: (N,) in nats. Stable: the row
    maximum is subtracted before exponentiating, whatever N is.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V)
    log_z = np.log(np.exp(shifted).sum(axis=1))  # (N,)
    nll = log_z - shifted[np.arange(len(y)), y]
    return nll, (shifted, log_z, y)


def cross_entropy_backward(dnll: np.ndarray, cache) -> np.ndarray:
    """Gradient of cross_entropy_forward w.r.t. logits: (softmax - onehot) * dnll."""
    shifted, log_z, y = cache
    dlogits = np.exp(shifted - log_z[:, None])  # (N, V) softmax over the vocabulary axis
    dlogits[np.arange(len(y)), y] -= 1.0
    dlogits *= dnll[:, None]
    return dlogits


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p over the last (vocabulary) axis, stable for any leading shape."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator):
    """Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p).

    x: any shape. Returns out (same shape) and the mask, which is the cache.
    """
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
    mask *= 1.0 / (1.0 - p)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return dout * mask
