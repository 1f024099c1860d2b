"""A course-style character RNN in NumPy: the reference dinogen is measured against.

Written the way the classic deep-learning course teaches it, not the way dinogen
does it: one name per optimizer step, column vectors, a one-hot input vector and
matrix products at every time step inside a Python loop (the output layer and
softmax included), plain SGD and element-wise gradient clipping. Hidden size 50
by default. It is kept in scripts/ for benchmarks only; it is not part of the
package.

Shapes: V vocabulary (characters + the boundary token 0), H hidden units; every
vector is a column, (V, 1) or (H, 1).
"""

from __future__ import annotations

import time

import numpy as np


def init_params(vocab_size: int, hidden: int = 50, seed: int = 1) -> dict[str, np.ndarray]:
    """Small random weights, zero biases: Wax (H, V), Waa (H, H), Wya (V, H), b (H, 1), by (V, 1)."""
    rng = np.random.default_rng(seed)
    return {
        "Wax": rng.standard_normal((hidden, vocab_size)) * 0.01,
        "Waa": rng.standard_normal((hidden, hidden)) * 0.01,
        "Wya": rng.standard_normal((vocab_size, hidden)) * 0.01,
        "b": np.zeros((hidden, 1)),
        "by": np.zeros((vocab_size, 1)),
    }


def forward(inputs: list[int], targets: list[int], a0: np.ndarray, p: dict[str, np.ndarray]):
    """Run one name through the network, one time step at a time.

    inputs, targets: token lists of equal length; a0: (H, 1). Returns the summed
    loss and the per-step caches (x, a, y_hat) as dicts keyed by time step.
    """
    V = p["Wax"].shape[1]
    x, a, y_hat = {}, {-1: a0}, {}
    loss = 0.0
    for t, token in enumerate(inputs):
        x[t] = np.zeros((V, 1))
        x[t][token] = 1.0  # one-hot input
        a[t] = np.tanh(p["Wax"] @ x[t] + p["Waa"] @ a[t - 1] + p["b"])
        z = p["Wya"] @ a[t] + p["by"]
        e = np.exp(z - z.max())
        y_hat[t] = e / e.sum()
        loss -= np.log(y_hat[t][targets[t], 0])
    return loss, (x, a, y_hat)


def backward(targets: list[int], cache, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Backpropagation through time, one step at a time, newest first."""
    x, a, y_hat = cache
    g = {"d" + k: np.zeros_like(v) for k, v in p.items()}
    da_next = np.zeros_like(a[0])
    for t in reversed(range(len(targets))):
        dy = y_hat[t].copy()
        dy[targets[t]] -= 1.0
        g["dWya"] += dy @ a[t].T
        g["dby"] += dy
        da = p["Wya"].T @ dy + da_next
        draw = (1.0 - a[t] ** 2) * da
        g["db"] += draw
        g["dWax"] += draw @ x[t].T
        g["dWaa"] += draw @ a[t - 1].T
        da_next = p["Waa"].T @ draw
    return g


def clip(grads: dict[str, np.ndarray], limit: float) -> None:
    """Clip every gradient entry to [-limit, limit], in place."""
    for grad in grads.values():
        np.clip(grad, -limit, limit, out=grad)


def sgd_step(name: np.ndarray, p: dict[str, np.ndarray], lr: float = 0.01, limit: float = 5.0) -> float:
    """One optimizer step on one name (its tokens, without boundaries). Returns the summed loss."""
    inputs = [0] + [int(c) for c in name]
    targets = inputs[1:] + [0]
    loss, cache = forward(inputs, targets, np.zeros((p["Waa"].shape[0], 1)), p)
    grads = backward(targets, cache, p)
    clip(grads, limit)
    for k in p:
        p[k] -= lr * grads["d" + k]
    return loss


def train(names: list[np.ndarray], vocab_size: int, *, hidden: int = 50, seconds: float = 2.0,
          seed: int = 1) -> dict:
    """SGD one name at a time, cycling through `names` (token arrays) for `seconds`.

    Returns {"steps", "seconds", "predictions", "loss"}: predictions are L + 1 per name.
    """
    p = init_params(vocab_size, hidden, seed)
    steps = predictions = 0
    loss = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        name = names[steps % len(names)]
        loss = sgd_step(name, p)
        steps += 1
        predictions += len(name) + 1
    return {"steps": steps, "seconds": time.perf_counter() - start, "predictions": predictions, "loss": loss}
