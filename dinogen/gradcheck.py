"""Prove the hand-written gradients against centered finite differences.

A small random model in float64 and a padded batch of names of different
lengths; every entry of every parameter is nudged by +-eps and the change in the
loss compared with the analytic gradient. With dropout, the masks are held fixed
during the check (the same generator state for every evaluation).

A finite difference proves the gradient of whatever loss the code computes, not
that padding is left out of it. So one more row, "padding", compares the padded
batch with its names one at a time, unpadded: the summed loss and the gradients
of the summed loss must agree.

What is checked is an Implementation: the loss alone (for the finite
differences) and the loss with its analytic gradients. FAST, the default, is the
path training uses; reference_implementation(parts) is the readable path of
dinogen/reference.py, with the classic mistakes of dinogen/bugs.py swapped in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dinogen import model, reference
from dinogen.data import Batch, Dataset, make_batch

TOLERANCE = 1e-6  # relative error allowed; correct code scores about 1e-8 in float64 (6e-8 at worst seen)
EPS = 1e-5  # finite-difference step
DROPOUT = 0.3  # of the models checked with dropout


@dataclass
class ParamCheck:
    name: str
    shape: tuple[int, ...]
    rel_error: float

    @property
    def passed(self) -> bool:
        return self.rel_error < TOLERANCE


Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Implementation:
    """What a gradient check compares: both functions take (params, cfg, batch, rng),
    rng holding the dropout masks or None, and compute the mean loss of the batch."""

    loss: Callable[[Params, model.ModelConfig, Batch, np.random.Generator | None], float]
    loss_and_grads: Callable[[Params, model.ModelConfig, Batch, np.random.Generator | None], tuple[float, Params]]
    dropout: bool  # whether it implements dropout; a check of a model with dropout needs it


def fast_loss(params: Params, cfg: model.ModelConfig, batch: Batch, rng: np.random.Generator | None) -> float:
    nll, _ = model.forward(params, cfg, batch, rng)
    return float(nll.mean())


FAST = Implementation(fast_loss, model.loss_and_grads, dropout=True)  # what training runs


def reference_implementation(parts: reference.Parts = reference.CORRECT) -> Implementation:
    """The step-by-step path of dinogen/reference.py built from parts (it has no dropout)."""

    def loss(params, cfg, batch, rng):
        return float(reference.forward(params, cfg, batch, parts)[0])

    def loss_and_grads(params, cfg, batch, rng):
        value, cache = reference.forward(params, cfg, batch, parts)
        return float(value), reference.backward(cache)

    return Implementation(loss, loss_and_grads, dropout=False)


CATEGORIES = 3  # categories of the conditioned models checked


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """||a - n|| / max(1e-8, ||a|| + ||n||) over a whole parameter.

    Per parameter rather than per entry: entries whose gradient is ~1e-7 carry the
    finite difference's rounding noise (~3e-11 here) at a relative 1e-4, so an
    element-wise maximum would flag correct code; a wrong formula moves the whole
    gradient and scores 1e-3 to 1.
    """
    diff = np.linalg.norm(analytic - numeric)
    return float(diff / max(1e-8, np.linalg.norm(analytic) + np.linalg.norm(numeric)))


def random_names(vocab_size: int, lengths: list[int], rng: np.random.Generator, categories: int = 0) -> Dataset:
    """Random names with the given lengths (and, with categories, a random category each)."""
    codes = rng.integers(1, vocab_size, size=sum(lengths)).astype(np.int32)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    cats = rng.integers(0, categories, size=len(lengths)).astype(np.int32) if categories else None
    return Dataset(codes, offsets, cats)


def padding_check(params: Params, cfg: model.ModelConfig, data: Dataset,
                  implementation: Implementation = FAST) -> ParamCheck:
    """The names of data in one padded batch against each alone: the largest relative
    difference of the summed loss and of each parameter's gradient of it (dropout off)."""

    def summed(idx: np.ndarray) -> tuple[float, Params]:
        batch = make_batch(data, idx)
        mean, grads = implementation.loss_and_grads(params, cfg, batch, None)
        n = batch.n_predictions
        return mean * n, {name: g * n for name, g in grads.items()}

    total, grads = summed(np.arange(len(data)))
    alone = [summed(np.array([i])) for i in range(len(data))]
    errors = [abs(total - sum(t for t, _ in alone)) / abs(total)]
    errors += [rel_error(grads[name], sum(g[name] for _, g in alone)) for name in grads]
    return ParamCheck("padding", (len(data),), max(errors))


def check_model(
    cfg: model.ModelConfig,
    *,
    seed: int = 0,
    lengths: tuple[int, ...] = (7, 2, 5, 1, 4),
    implementation: Implementation = FAST,
) -> list[ParamCheck]:
    """Compare analytic and numeric gradients of every parameter of a float64 model,
    then the padded batch with its names alone (the last check, named "padding")."""
    if cfg.dropout and not implementation.dropout:
        raise ValueError("this implementation has no dropout; check a model with dropout 0")
    rng = np.random.default_rng(seed)
    params = model.init_params(cfg, rng, dtype=np.float64)
    # Larger output weights than at initialisation, so the loss surface is not flat.
    params["W_hy"] = rng.standard_normal(params["W_hy"].shape)
    for name in params:
        if name.startswith("b_") or name == "W_cat":  # zero at initialisation
            params[name] = 0.1 * rng.standard_normal(params[name].shape)
    data = random_names(cfg.vocab_size, list(lengths), rng, cfg.categories)
    batch = make_batch(data, np.arange(len(lengths)))

    def masks() -> np.random.Generator | None:
        """The same dropout masks at every evaluation: a fresh generator, same seed."""
        return np.random.default_rng(seed + 1) if cfg.dropout else None

    def loss() -> float:
        return implementation.loss(params, cfg, batch, masks())

    _, grads = implementation.loss_and_grads(params, cfg, batch, masks())
    results = []
    for name, p in params.items():
        numeric = np.zeros_like(p)
        flat, nflat = p.reshape(-1), numeric.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + EPS
            plus = loss()
            flat[i] = saved - EPS
            minus = loss()
            flat[i] = saved
            nflat[i] = (plus - minus) / (2 * EPS)
        results.append(ParamCheck(name, p.shape, rel_error(grads[name], numeric)))
    return results + [padding_check(params, cfg, data, implementation)]


def standard_configs(cells: tuple[str, ...], layers: tuple[int, ...], dropout: float = DROPOUT) -> list[model.ModelConfig]:
    """What `dinogen gradcheck` covers: each cell and layer count, plain, with an
    embedding and dropout (dropout 0: with an embedding only), and with both and
    CATEGORIES categories as well."""
    configs = []
    for cell in cells:
        for n_layers in layers:
            configs.append(model.ModelConfig(vocab_size=7, cell=cell, hidden=5, layers=n_layers))
            configs.append(model.ModelConfig(7, cell, 5, n_layers, embed_dim=4, dropout=dropout))
            configs.append(model.ModelConfig(7, cell, 5, n_layers, embed_dim=4, dropout=dropout, categories=CATEGORIES))
    return configs
