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
        coeffs = self.advance()
        for name, p in params.items():
            self.update(name, p, grads[name], (), coeffs)

    def advance(self) -> tuple[float, ...]:
        """Count one more update; what update() needs for it: (lr,)."""
        return (self.lr,)

    def update(self, name: str, p: np.ndarray, g: np.ndarray, state: tuple, coeffs: tuple[float, ...]) -> None:
        """Update p (a parameter or a slice of one, named name) in place from g, its gradient."""
        (lr,) = coeffs
        if self.weight_decay and decays(name):
            p *= 1.0 - lr * self.weight_decay
        p -= lr * g

    def part(self, name: str, lo: int, hi: int) -> tuple:
        """The state update() takes for entries lo:hi of parameter name, flattened: none."""
        return ()

    def move_state(self, place) -> None:
        """Put every state array where place(array) returns a copy of it: nothing to move."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        return None


ADAM_CHUNK = 1 << 15  # entries of a parameter that Adam updates together (see Adam.update)


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
        coeffs = self.advance()
        for name, p in params.items():
            self.update(name, p, grads[name], (self.m[name], self.v[name], self._scratch[name]), coeffs)

    def advance(self) -> tuple[float, ...]:
        """Count one more update; what update() needs for it: (lr, step size, eps)."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        eps_hat = self.eps * np.sqrt(1 - b2**self.t)  # eps on the bias-corrected scale
        return self.lr, step_size, eps_hat  # NumPy float64 scalars: the moments' arithmetic rounds as it always has

    def update(self, name: str, p: np.ndarray, g: np.ndarray, state: tuple, coeffs: tuple[float, ...]) -> None:
        """Update p (a parameter or a slice of one, named name) in place from g, its gradient,
        and its moments; state is (m, v, scratch), arrays shaped like p.

        A large parameter is updated ADAM_CHUNK entries at a time, so that the twelve
        passes over each piece find it in the cache; every entry is computed exactly as
        in one piece."""
        arrays = (p, g, *state)
        if p.size <= ADAM_CHUNK or not all(a.flags.c_contiguous for a in arrays):
            self.update_piece(name, *arrays, coeffs)
            return
        flat = [a.reshape(-1) for a in arrays]  # views, as every array is contiguous
        for lo in range(0, p.size, ADAM_CHUNK):
            self.update_piece(name, *(a[lo : lo + ADAM_CHUNK] for a in flat), coeffs)

    def update_piece(self, name: str, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                     s: np.ndarray, coeffs: tuple[float, ...]) -> None:
        """Adam's update of p in place, with its moments m and v and a scratch array s."""
        lr, step_size, eps_hat = coeffs
        b1, b2 = self.beta1, self.beta2
        np.multiply(g, 1 - b1, out=s)
        m *= b1
        m += s  # m = b1 m + (1 - b1) g
        np.multiply(g, g, out=s)
        s *= 1 - b2
        v *= b2
        v += s  # v = b2 v + (1 - b2) g^2
        if self.weight_decay and decays(name):
            p *= 1.0 - lr * self.weight_decay
        np.sqrt(v, out=s)
        s += eps_hat
        np.divide(m, s, out=s)
        s *= step_size
        p -= s  # p -= step_size m / (sqrt(v) + eps_hat)

    def part(self, name: str, lo: int, hi: int) -> tuple:
        """The state update() takes for entries lo:hi of parameter name, flattened: views of (m, v, scratch)."""
        return tuple(d[name].reshape(-1)[lo:hi] for d in (self.m, self.v, self._scratch))

    def move_state(self, place) -> None:
        """Put every moment array where place(array) returns a copy of it (shared memory, say)."""
        for moments in (self.m, self.v):
            for name, array in moments.items():
                moments[name] = place(array)

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


def sum_of_squares(arrays) -> float:
    """The sum of the squares of every entry of arrays: inf or nan only when an entry is not finite."""
    arrays = list(arrays)
    total = sum(float(np.vdot(g, g)) for g in arrays)  # float32 sums of squares: fast
    if not np.isfinite(total):  # overflow of the squares past 3e38, or a non-finite entry: again in float64
        total = sum(float(np.vdot(g64, g64)) for g64 in (g.astype(np.float64) for g in arrays))
    return total


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """The joint L2 norm of all gradients: inf or nan only when an entry is not finite."""
    return float(np.sqrt(sum_of_squares(grads.values())))


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
