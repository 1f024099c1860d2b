"""How likely the model finds names: per name for `score`, per file for `eval`.

Both rest on model.nll_per_name, the evaluation training uses too: model.forward
over length-sorted batches, each prediction's NLL added to its name.
A name of L characters makes L + 1 predictions (its characters and its end),
so `score` of one name and `eval` of a file holding only that name agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dinogen import model
from dinogen.data import Dataset, Vocab, encode_names
from dinogen.config import ModelConfig


def evaluate(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset) -> dict:
    """Mean NLL per prediction over a whole data set (micro-averaged), in nats and bits, and perplexity."""
    predictions = data.predictions()
    nll = float(model.nll_per_name(params, cfg, data, np.arange(len(data))).sum()) / predictions
    return {
        "nll": nll,
        "bits_per_char": nll / math.log(2),
        "perplexity": math.exp(nll),
        "names": len(data),
        "predictions": predictions,
    }


@dataclass
class Scored:
    """Names with their log-probability under the model (temperature 1, end token included)."""

    names: list[str]  # the names, in order
    logprob: np.ndarray  # (n,) float64 total log-probability of each name and its end, in nats
    novel: np.ndarray | None  # (n,) bool not in the training data; None when the training data is unknown

    @property
    def nll(self) -> np.ndarray:
        """(n,) negative log-likelihood per prediction: per character, the end token included."""
        return -self.logprob / (np.array([len(name) for name in self.names]) + 1)

    def records(self) -> list[dict]:
        """One JSON-ready dict per name."""
        novel = [None] * len(self.names) if self.novel is None else self.novel.tolist()
        return [
            {"name": name, "nll": nll, "logprob": logprob, "novel": is_novel}
            for name, nll, logprob, is_novel in zip(self.names, self.nll.tolist(), self.logprob.tolist(), novel)
        ]


@dataclass
class Skipped:
    """A name that cannot be scored: it holds a character the model never saw."""

    name: str  # the name as given
    char: str  # its first unknown character


@dataclass
class Scores:
    scored: Scored  # the names the model can read, scored, in input order
    skipped: list[Skipped] = field(default_factory=list)  # the others, in input order


def score_names(
    params: dict[str, np.ndarray],
    cfg: ModelConfig,
    vocab: Vocab,
    names: list[str],
    training_names: set[str] | None = None,
) -> Scores:
    """Score each name; names with an unknown character are skipped and listed, not an error."""
    readable: list[str] = []
    skipped: list[Skipped] = []
    for name in names:
        unknown = vocab.unknown(name)
        if unknown is None:
            readable.append(name)
        else:
            skipped.append(Skipped(name, unknown))
    data = encode_names(readable, vocab)
    logprob = -model.nll_per_name(params, cfg, data, np.arange(len(data))) if readable else np.zeros(0)
    novel = None if training_names is None else np.array([name not in training_names for name in readable], bool)
    return Scores(Scored(readable, logprob, novel), skipped)
