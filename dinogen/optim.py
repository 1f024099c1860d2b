"""Optimizers with per-parameter state, and gradient clipping.

An optimizer updates the params dict in place from a parallel grads dict. Its
state (moments, step count) is a dict of arrays so a checkpoint can hold it.
"""

from __future__ import annotations

import numpy as np


def decays(name: str) -> bool:
    """Weight decay applies to the weight matrices, the embedding included, not to biases
    (as nanoGPT does)."""
    return name.startswith("W_")


class SGD:
    """Plain stochastic gradient descent: p -= lr * (g + weight_decay * p), the decay
    on the weight matrices only (see decays)."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 0.01, weight_decay: float = 0.0) -> None:
        self.lr, self.weight_decay = lr, weight_decay

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update params in place from grads, a dict parallel to it."""
        for name, p in params.items():
            if self.weight_decay and decays(name):
                p *= 1.0 - self.lr * self.weight_decay
            p -= self.lr * grads[name]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        return None


class Adam:
    """Adam with bias correction (Kingma & Ba, 2015) and decoupled weight decay
    (AdamW, Loshchilov & Hutter, 2019): p -= lr * weight_decay * p, apart from the
    adaptive step, on the weight matrices only (see decays)."""

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.lr, self.weight_decay, self.beta1, self.beta2, self.eps = lr, weight_decay, beta1, beta2, eps
        self.t = 0  # updates made so far
        self.m = {name: np.zeros_like(p) for name, p in params.items()}  # first moments
        self.v = {name: np.zeros_like(p) for name, p in params.items()}  # second moments
        self._scratch = {name: np.empty_like(p) for name, p in params.items()}  # no temporaries per step

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update params in place from grads, a dict parallel to it, and the moments."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        eps_hat = self.eps * np.sqrt(1 - b2**self.t)  # eps on the bias-corrected scale
        for name, p in params.items():
            g, m, v, s = grads[name], self.m[name], self.v[name], self._scratch[name]
            np.multiply(g, 1 - b1, out=s)
            m *= b1
            m += s  # m = b1 m + (1 - b1) g
            np.multiply(g, g, out=s)
            s *= 1 - b2
            v *= b2
            v += s  # v = b2 v + (1 - b2) g^2
            if self.weight_decay and decays(name):
                p *= 1.0 - self.lr * self.weight_decay
            np.sqrt(v, out=s)
            s += eps_hat
            np.divide(m, s, out=s)
            s *= step_size
            p -= s  # p -= step_size m / (sqrt(v) + eps_hat)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"t": np.array(self.t, dtype=np.int64)}
        state.update({f"m/{name}": m for name, m in self.m.items()})
        state.update({f"v/{name}": v for name, v in self.v.items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        for name in self.m:
            self.m[name][...] = state[f"m/{name}"]
            self.v[name][...] = state[f"v/{name}"]


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """The joint L2 norm of all gradients: inf or nan only when an entry is not finite."""
    total = sum(float(np.vdot(g, g)) for g in grads.values())  # float32 sums of squares: fast
    if not np.isfinite(total):  # overflow of the squares past 3e38, or a non-finite entry: again in float64
        total = sum(float(np.vdot(g64, g64)) for g64 in (g.astype(np.float64) for g in grads.values()))
    return float(np.sqrt(total))


def clip_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most max_norm.

    Returns the norm before clipping (inf or nan when a gradient is not finite).
    """
    norm = global_norm(grads)
    if max_norm > 0 and norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


def clip_elementwise(grads: dict[str, np.ndarray], limit: float) -> float:
    """Clip every gradient entry to [-limit, limit], as the classic course does."""
    norm = global_norm(grads)
    for g in grads.values():
        np.clip(g, -limit, limit, out=g)
    return norm
