"""Layers that run once over the whole (T, B) block, outside the time loop.

Each is a forward/backward pair in the CS231n manner. Shapes: T time steps,
B names, N real (unpadded) predictions, V vocabulary size, D input width,
M output width.
"""

from __future__ import annotations

import numpy as np


def lookup_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, real: np.ndarray):
    """Row lookup instead of a one-hot product: out[t, i] = W[x[t, i]] + b.

    x: (T, B) int; W: (V, M); b: (M,); real: (N,) flat indices of real positions.
    Returns out: (T, B, M).
    """
    out = np.take(W + b, x, axis=0)  # (T, B, M): the bias is added to V rows, not T*B
    return out, (x, real, W.shape)


def lookup_backward(dout: np.ndarray, cache):
    """Gradients of lookup_forward: rows of dW accumulate dout at every use.

    The scatter-add is one matrix product with a one-hot (V, T*B) selector whose
    columns at padded positions are zero: BLAS sums the rows of each token, many
    times faster than np.add.at or sorting and np.add.reduceat. Every real position
    adds to exactly one row of dW, so db is the column sum of dW.
    Returns dW: (V, M), db: (M,).
    """
    x, real, (V, M) = cache
    select = np.zeros((V, x.size), dtype=dout.dtype)  # (V, T*B)
    select[x.ravel()[real], real] = 1.0
    dW = select @ dout.reshape(-1, M)
    return dW, dW.sum(axis=0)


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
