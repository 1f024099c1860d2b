"""Why the model scores a name as it does: its probability for each character, in turn.

For each position of a name (its characters, then its end) the model's probability for
what came, its surprise in bits, and the likeliest alternatives there. The numbers come
from the same forward pass `score` runs for one name, so the surprises add up to what
`dinogen score NAME` reports for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dinogen import model
from dinogen.config import ModelConfig
from dinogen.data import BOUNDARY, Vocab, encode_names, make_batch

END = ""  # the end of the name, as a character of the explanation


@dataclass
class Position:
    char: str  # what came here: a character, or END
    prob: float  # the model's probability for it
    nats: float  # its surprise, -ln prob, as the loss counts it
    top: list[tuple[str, float]]  # the likeliest characters here (END for the end), most likely first

    @property
    def bits(self) -> float:
        return self.nats / math.log(2)


@dataclass
class Explanation:
    name: str
    positions: list[Position]  # len(name) + 1: each character, then the end

    @property
    def logprob(self) -> float:
        """The name's total log-probability, its end included: what `score` reports."""
        return -sum(position.nats for position in self.positions)  # in order, as evaluation adds them

    @property
    def nll(self) -> float:
        return -self.logprob / len(self.positions)

    def record(self) -> dict:
        """A JSON-ready dict."""
        return {
            "name": self.name, "nll": self.nll, "logprob": self.logprob,
            "positions": [{"char": p.char, "prob": p.prob, "bits": p.bits,
                           "top": [{"char": c, "prob": q} for c, q in p.top]} for p in self.positions],
        }


def explain(params: dict[str, np.ndarray], cfg: ModelConfig, vocab: Vocab, name: str, top: int = 3,
            category: int | None = None) -> Explanation:
    """The model's view of each position of name (every character must be in vocab); a model
    with categories sees it as a name of category (a row of W_cat), which it then needs."""
    data = encode_names([name], vocab, categories=None if category is None else [category])
    batch = make_batch(data, np.arange(1))
    nll, cache = model.forward(params, cfg, batch)  # (L + 1,) in time order: one name, one column
    probs = cache[-2][0]  # the loss layer's (its cache is second last) softmax: (L + 1, V), row i the distribution at position i
    targets = batch.y.ravel()[batch.real]
    chars = (END,) + vocab.chars  # token -> its character; the boundary token ends the name
    positions = []
    for i, target in enumerate(targets):
        order = np.argsort(-probs[i], kind="stable")[:top]
        positions.append(Position(
            char=chars[target] if target != BOUNDARY else END,
            prob=float(math.exp(-float(nll[i]))),
            nats=float(nll[i]),
            top=[(chars[t], float(probs[i, t])) for t in order],
        ))
    return Explanation(name, positions)
