"""How likely the model finds names: per name for `score`, per file for `eval`.

Both rest on name_nll, which runs model.forward over the same length-sorted
batches as training's evaluation and adds each prediction's NLL to its name.
A name of L characters makes L + 1 predictions (its characters and its end),
so `score` of one name and `eval` of a file holding only that name agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dinogen import model
from dinogen.data import Dataset, Vocab, encode_names, iter_eval_batches
from dinogen.model import ModelConfig
from dinogen.workspace import Workspace


def name_nll(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset) -> np.ndarray:
    """(N,) float64 negative log-likelihood of each name of data, in nats, its end included."""
    totals = np.zeros(len(data))
    ws = Workspace()  # the batches' arrays, reused from batch to batch
    for batch in iter_eval_batches(data, np.arange(len(data))):
        nll, _ = model.forward(params, cfg, batch, ws=ws)  # (P,) in the order of batch.real
        width = batch.x.shape[1]
        columns = batch.real % width  # (P,) the batch column of each prediction
        totals[batch.names] += np.bincount(columns, weights=nll, minlength=width)  # names are distinct
    return totals


def evaluate(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset) -> dict:
    """Mean NLL per prediction over a whole data set (micro-averaged), in nats and bits, and perplexity."""
    predictions = data.predictions()
    nll = float(name_nll(params, cfg, data).sum()) / predictions
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
    logprob = -name_nll(params, cfg, encode_names(readable, vocab)) if readable else np.zeros(0)
    novel = None if training_names is None else np.array([name not in training_names for name in readable], bool)
    return Scores(Scored(readable, logprob, novel), skipped)
