"""Sampling names: all N at once, a loop over characters vectorised over names.

Shapes: N names still being written, V vocabulary, H hidden, M max length.
Names that have produced the boundary token are dropped from the batch, so the
work per step shrinks as names end.
"""

from __future__ import annotations

import numpy as np

from dinogen import model
from dinogen.data import BOUNDARY, Vocab
from dinogen.errors import DinogenError

DEFAULT_MAX_LEN = 100  # safety cap on sampled name length, in characters


def sample_tokens(
    params: dict[str, np.ndarray],
    cfg: model.ModelConfig,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    max_len: int = DEFAULT_MAX_LEN,
) -> np.ndarray:
    """Draw n names as tokens: (n, max_len) int, each row padded with BOUNDARY after its end.

    Every name has at least one character (the end cannot be drawn first); a
    name that reaches max_len characters without ending is cut there.
    """
    if n < 1:
        raise DinogenError("the number of names must be at least 1.")
    if not temperature > 0:
        raise DinogenError("the temperature must be positive.")
    dtype = params["W_hy"].dtype
    out = np.zeros((n, max_len), dtype=np.int32)
    alive = np.arange(n)  # rows of `out` still being written
    states = model.initial_states(cfg, n, dtype)
    x = np.full(n, BOUNDARY, dtype=np.int32)
    for t in range(max_len):
        logits, states = model.step(params, cfg, x, states)  # (N, V)
        if t == 0:
            logits[:, BOUNDARY] = -np.inf  # a name has at least one character
        x = _draw(logits / temperature, rng)
        out[alive, t] = x
        going = x != BOUNDARY
        if not going.all():
            alive, x = alive[going], x[going]
            states = [tuple(s[going] for s in state) for state in states]
            if len(alive) == 0:
                break
    return out


def _draw(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row: the cumulative softmax against one uniform number."""
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))  # (N, V) unnormalised
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(logits), dtype=cdf.dtype) * cdf[:, -1]  # (N,)
    return np.minimum((cdf < u[:, None]).sum(axis=1), logits.shape[1] - 1).astype(np.int32)


def decode_tokens(tokens: np.ndarray, vocab: Vocab) -> list[str]:
    """Token rows (n, M), boundary-padded, to strings, vectorised over names."""
    table = np.array(("",) + vocab.chars, dtype="U1")  # token -> character; boundary -> ""
    chars = np.ascontiguousarray(table[tokens])  # (n, M) U1
    return chars.view(f"U{tokens.shape[1]}").ravel().tolist()


def sample(
    params: dict[str, np.ndarray],
    cfg: model.ModelConfig,
    vocab: Vocab,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    max_len: int = DEFAULT_MAX_LEN,
) -> list[str]:
    """n new names as strings."""
    return decode_tokens(sample_tokens(params, cfg, n, rng, temperature, max_len), vocab)
