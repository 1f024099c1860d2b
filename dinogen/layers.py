"""Layers that run once over the whole (T, B) block, outside the time loop.

Each is a forward/backward pair in the CS231n manner. Shapes: T time steps,
B names, N real (unpadded) predictions, V vocabulary size, D input width,
M output width.
"""

from __future__ import annotations

import numpy as np

from dinogen.workspace import FRESH, Workspace

ONE_HOT_MAX_V = 512  # largest vocabulary whose input-weight gradient is a one-hot product


def lookup_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, real: np.ndarray, ws: Workspace = FRESH):
    """Row lookup instead of a one-hot product: out[t, i] = W[x[t, i]] (+ b).

    x: (T, B) int, every entry a row of W (encoding guarantees it: "clip" mode
    never clips); W: (V, M); b: (M,) or None (an embedding has no bias); real:
    (N,) flat indices of real positions. Returns out: (T, B, M).
    """
    out = ws.empty("out", x.shape + W.shape[1:], W.dtype)
    if b is not None and len(W) < x.size:  # add the bias to the V rows of W, fewer than the T*B looked up
        table = np.add(W, b, out=ws.empty("table", W.shape, W.dtype))  # (V, M)
        np.take(table, x, axis=0, out=out, mode="clip")  # "clip" writes straight into out; "raise" would buffer
    else:
        np.take(W, x, axis=0, out=out, mode="clip")
        if b is not None:
            out += b
    return out, (x, real, W.shape, b is not None, ws)


def lookup_backward(dout: np.ndarray, cache):
    """Gradients of lookup_forward: rows of dW accumulate dout at every use.

    For a vocabulary of up to ONE_HOT_MAX_V tokens the scatter-add is one matrix
    product with a one-hot (V, T*B) selector whose columns at padded positions are
    zero: BLAS sums the rows of each token, many times faster than np.add.at. For
    larger vocabularies (say, CJK names) the selector would be too big, so the token
    ids are sorted once and runs summed with np.add.reduceat. Every real position
    adds to exactly one row of dW, so db is the column sum of dW.
    Returns dW: (V, M) and db: (M,), or None for a lookup without bias.
    """
    x, real, (V, M), has_bias, ws = cache
    tokens = x.ravel()[real]  # (N,)
    dW = ws.empty("dW", (V, M), dout.dtype)
    if V <= ONE_HOT_MAX_V:
        select = ws.zeros("select", (V, x.size), dout.dtype)  # (V, T*B)
        select[tokens, real] = 1.0
        np.matmul(select, dout.reshape(-1, M), out=dW)
    else:
        order = np.argsort(tokens, kind="stable")
        tokens = tokens[order]
        starts = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])
        dW.fill(0)
        dW[tokens[starts]] = np.add.reduceat(dout.reshape(-1, M)[real][order], starts, axis=0)
    return dW, dW.sum(axis=0) if has_bias else None


def category_forward(a: np.ndarray, W_cat: np.ndarray, cats: np.ndarray):
    """In place: a[t, i] += W_cat[cats[i]] at every step t, the category's row of input weights.

    The same as reading the category's one-hot beside every character, as the PyTorch
    names tutorial concatenates it, but looked up once per name. a: (T, B, M);
    W_cat: (K, M); cats: (B,) int. Returns a and the cache.
    """
    a += W_cat[cats]  # (B, M), broadcast over time
    return a, (cats, W_cat.shape)


def category_backward(da: np.ndarray, cache) -> np.ndarray:
    """Gradient of category_forward: each name's da summed over time, added to its
    category's row (padded positions of da are 0). Returns dW_cat: (K, M)."""
    cats, shape = cache
    dW_cat = np.zeros(shape, da.dtype)
    np.add.at(dW_cat, cats, da.sum(axis=0))  # += : names of one category share its row
    return dW_cat


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, ws: Workspace = FRESH):
    """out = x W + b over any leading shape, as one product. x: (..., D); W: (D, M); b: (M,)."""
    D, M = W.shape
    out = ws.empty("out", x.shape[:-1] + (M,), W.dtype)
    np.matmul(x.reshape(-1, D), W, out=out.reshape(-1, M))
    out += b
    return out, (x, W, ws)


def dense_backward(dout: np.ndarray, cache):
    """Gradients of dense_forward. Returns dx: (..., D), dW: (D, M), db: (M,)."""
    x, W, ws = cache
    D, M = W.shape
    x2, dout2 = x.reshape(-1, D), dout.reshape(-1, M)
    dx = ws.empty("dx", x.shape, dout.dtype)
    np.matmul(dout2, W.T, out=dx.reshape(-1, D))
    dW = np.matmul(x2.T, dout2, out=ws.empty("dW", (D, M), dout.dtype))
    return dx, dW, dout2.sum(axis=0)


def cross_entropy_forward(logits: np.ndarray, y: np.ndarray, ws: Workspace = FRESH):
    """Negative log-likelihood of each target under a softmax over the vocabulary.

    logits: (N, V); y: (N,) int. Returns nll: (N,) in nats. Stable: the row
    maximum is subtracted before exponentiating, whatever N is.
    """
    probs = ws.empty("probs", logits.shape, logits.dtype)  # (N, V) shifted logits, then the softmax
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=probs)
    target = probs[np.arange(len(y)), y]  # (N,) shifted logit of each target
    np.exp(probs, out=probs)  # unnormalised
    total = probs.sum(axis=1)  # (N,)
    nll = np.log(total) - target
    probs /= total[:, None]  # softmax over the vocabulary axis
    return nll, (probs, y, ws)


def cross_entropy_backward(dnll: np.ndarray, cache) -> np.ndarray:
    """Gradient of cross_entropy_forward w.r.t. logits: (softmax - onehot) * dnll."""
    probs, y, ws = cache
    dlogits = np.multiply(probs, dnll[:, None], out=ws.empty("dlogits", probs.shape, probs.dtype))  # (N, V)
    dlogits[np.arange(len(y)), y] -= dnll
    return dlogits


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, ws: Workspace = FRESH):
    """Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p).

    x: any shape. Returns out (same shape) and the cache (mask, ws), where mask
    holds 0 or 1/(1-p) per entry.
    """
    uniform = rng.random(dtype=np.float32, out=ws.empty("uniform", x.shape, np.float32))
    keep = np.greater_equal(uniform, p, out=ws.empty("keep", x.shape, bool))
    mask = np.multiply(keep, 1.0 / (1.0 - p), out=ws.empty("mask", x.shape, x.dtype))
    return np.multiply(x, mask, out=ws.empty("out", x.shape, x.dtype)), (mask, ws)


def dropout_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of dropout_forward: dout through the same mask. Returns dx, dout's shape."""
    mask, ws = cache
    return np.multiply(dout, mask, out=ws.empty("dx", mask.shape, dout.dtype))
