"""Layers that run once over the whole (T, B) block, outside the time loop.

Each is a forward/backward pair in the CS231n manner. Shapes: T time steps,
B names, N real (unpadded) predictions, V vocabulary size, D input width,
M output width.
"""

from __future__ import annotations

import numpy as np

ONE_HOT_MAX_V = 512  # largest vocabulary whose input-weight gradient is a one-hot product

def lookup_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, real: np.ndarray):
    """Row lookup instead of a one-hot product: out[t, i] = W[x[t, i]] (+ b).

    x: (T, B) int; W: (V, M); b: (M,) or None (an embedding has no bias);
    real: (N,) flat indices of real positions. Returns out: (T, B, M).
    """
    out = np.take(W if b is None else W + b, x, axis=0)  # (T, B, M): a bias is added to V rows, not T*B
    return out, (x, real, W.shape)


def lookup_backward(dout: np.ndarray, cache):
    """Gradients of lookup_forward: rows of dW accumulate dout at every use.

    For a vocabulary of up to ONE_HOT_MAX_V tokens the scatter-add is one matrix
    product with a one-hot (V, T*B) selector whose columns at padded positions are
    zero: BLAS sums the rows of each token, many times faster than np.add.at. For
    larger vocabularies (say, CJK names) the selector would be too big, so the token
    ids are sorted once and runs summed with np.add.reduceat. Every real position
    adds to exactly one row of dW, so db is the column sum of dW.
    Returns dW: (V, M) and db: (M,), which a lookup without bias ignores.
    """
    x, real, (V, M) = cache
    tokens = x.ravel()[real]  # (N,)
    if V <= ONE_HOT_MAX_V:
        select = np.zeros((V, x.size), dtype=dout.dtype)  # (V, T*B)
        select[tokens, real] = 1.0
        dW = select @ dout.reshape(-1, M)
    else:
        order = np.argsort(tokens, kind="stable")
        tokens = tokens[order]
        starts = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])
        dW = np.zeros((V, M), dtype=dout.dtype)
        dW[tokens[starts]] = np.add.reduceat(dout.reshape(-1, M)[real][order], starts, axis=0)
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
    probs = np.exp(shifted)  # (N, V) unnormalised
    total = probs.sum(axis=1)  # (N,)
    nll = np.log(total) - shifted[np.arange(len(y)), y]
    probs /= total[:, None]  # softmax over the vocabulary axis
    return nll, (probs, y)


def cross_entropy_backward(dnll: np.ndarray, cache) -> np.ndarray:
    """Gradient of cross_entropy_forward w.r.t. logits: (softmax - onehot) * dnll."""
    probs, y = cache
    dlogits = probs.copy()  # (N, V)
    dlogits[np.arange(len(y)), y] -= 1.0
    dlogits *= dnll[:, None]
    return dlogits


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator):
    """Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p).

    x: any shape. Returns out (same shape) and the mask, which is the cache.
    """
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
    mask *= 1.0 / (1.0 - p)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return dout * mask
