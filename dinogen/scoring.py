"""How likely the model finds names: per name for `score`, per file for `eval`.

Both rest on model.nll_per_name, the evaluation training uses too: model.forward
over length-sorted batches, each prediction's NLL added to its name.
A name of L characters makes L + 1 predictions (its characters and its end),
so `score` of one name and `eval` of a file holding only that name agree.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace

import numpy as np

from dinogen import model
from dinogen.data import Dataset, Vocab, encode_names
from dinogen.config import ModelConfig

MAX_EXPONENT = math.log(sys.float_info.max)  # the largest nll whose perplexity exp(nll) is a float (about 709.78)


def evaluate(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset, priors: np.ndarray | None = None,
             category_names: list[str] | tuple[str, ...] = ()) -> dict:
    """Mean NLL per prediction over a whole data set (micro-averaged), in nats and bits, and perplexity.

    A model with categories scores each name under its category when data has
    them, and then also reports each category's NLL and how often the posterior's
    likeliest category (priors: the training shares) is the name's, against always
    answering the likeliest category beforehand; without them, the marginal P(name).
    """
    if not cfg.categories:
        return _nll_summary(model.nll_per_name(params, cfg, data, np.arange(len(data))), data)
    logprobs = logprob_by_category(params, cfg, data)  # (n, K)
    if data.categories is None:
        return _nll_summary(-marginal(logprobs, priors), data)
    truth = data.categories
    result = _nll_summary(-logprobs[np.arange(len(data)), truth], data)
    guessed = posteriors(logprobs, priors).argmax(axis=1)  # (n,)
    majority = int(np.argmax(priors)) if priors is not None else 0
    result["accuracy"] = float((guessed == truth).mean())
    result["majority_accuracy"] = float((truth == majority).mean())
    result["categories"] = {}
    for k in np.unique(truth).tolist():
        members = np.flatnonzero(truth == k)
        entry = _nll_summary(-logprobs[members, k], Dataset(data.codes, data.offsets), members)
        entry["accuracy"] = float((guessed[members] == k).mean())
        result["categories"][category_names[k] if category_names else str(k)] = entry
    return result


def _nll_summary(nll_per_name: np.ndarray, data: Dataset, idx: np.ndarray | None = None) -> dict:
    """The summary of evaluate() for names idx (all by default), given each one's total NLL."""
    predictions = data.predictions(idx)
    nll = float(nll_per_name.sum()) / predictions
    return {
        "nll": nll,
        "bits_per_char": nll / math.log(2),
        "perplexity": math.exp(nll) if nll <= MAX_EXPONENT else math.inf,  # inf: beyond the floats' range
        "names": len(data) if idx is None else len(idx),
        "predictions": predictions,
    }


@dataclass
class Scored:
    """Names with their log-probability under the model (temperature 1, end token included)."""

    names: list[str]  # the names, in order
    logprob: np.ndarray  # (n,) float64 total log-probability of each name and its end, in nats
    novel: np.ndarray | None  # (n,) bool not in the training data; None when the training data is unknown
    categories: list[str] | None = None  # each name's category (sampled or asked for); None: no categories

    @property
    def nll(self) -> np.ndarray:
        """(n,) negative log-likelihood per prediction: per character, the end token included."""
        return -self.logprob / (np.array([len(name) for name in self.names]) + 1)

    def records(self) -> list[dict]:
        """One JSON-ready dict per name."""
        novel = [None] * len(self.names) if self.novel is None else self.novel.tolist()
        records = [
            {"name": name, "nll": nll, "logprob": logprob, "novel": is_novel}
            for name, nll, logprob, is_novel in zip(self.names, self.nll.tolist(), self.logprob.tolist(), novel)
        ]
        for record, category in zip(records, self.categories or []):
            record["category"] = category
        return records


@dataclass
class Skipped:
    """A name that cannot be scored: it holds a character the model never saw."""

    name: str  # the name as given
    char: str  # its first unknown character


@dataclass
class Scores:
    scored: Scored  # the names the model can read, scored, in input order
    skipped: list[Skipped] = field(default_factory=list)  # the others, in input order


def logprob_by_category(params: dict[str, np.ndarray], cfg: ModelConfig, data: Dataset) -> np.ndarray:
    """(n, K) float64 log P(name | category k) of every name of data (its end included), for each
    of the model's K categories: one pass over the names per category."""
    n = len(data)
    logprobs = np.empty((n, cfg.categories))
    for k in range(cfg.categories):
        as_k = replace(data, categories=np.full(n, k, dtype=np.int32))
        logprobs[:, k] = -model.nll_per_name(params, cfg, as_k, np.arange(n))
    return logprobs


def joint(logprobs: np.ndarray, priors: np.ndarray | None) -> np.ndarray:
    """(n, K) log P(name, category) = log P(name | category) + log P(category); priors None: uniform."""
    K = logprobs.shape[1]
    with np.errstate(divide="ignore"):  # a category of no training names has prior 0: log 0 = -inf
        log_prior = np.log(priors) if priors is not None else np.full(K, -math.log(K))
    return logprobs + log_prior


def posteriors(logprobs: np.ndarray, priors: np.ndarray | None) -> np.ndarray:
    """(n, K) P(category | name) by Bayes' rule: the joint normalised over the categories, each row summing to 1."""
    scores = joint(logprobs, priors)
    scores -= scores.max(axis=1, keepdims=True)  # stable: the likeliest category at exp(0) = 1
    weights = np.exp(scores)
    return weights / weights.sum(axis=1, keepdims=True)


def marginal(logprobs: np.ndarray, priors: np.ndarray | None) -> np.ndarray:
    """(n,) log P(name) = log sum_k P(category k) P(name | k): the model's probability of a name
    when the category is drawn as sampling draws it."""
    scores = joint(logprobs, priors)
    top = scores.max(axis=1)
    return top + np.log(np.exp(scores - top[:, None]).sum(axis=1))


def score_names(
    params: dict[str, np.ndarray],
    cfg: ModelConfig,
    vocab: Vocab,
    names: list[str],
    training_names: set[str] | None = None,
    category: int | None = None,
    priors: np.ndarray | None = None,
) -> Scores:
    """Score each name; names with an unknown character are skipped and listed, not an error.

    For a model with categories: under category (a number) when given, else the
    marginal over the categories drawn with priors (each one's share of the training names)."""
    readable: list[str] = []
    skipped: list[Skipped] = []
    for name in names:
        unknown = vocab.unknown(name)
        if unknown is None:
            readable.append(name)
        else:
            skipped.append(Skipped(name, unknown))
    data = encode_names(readable, vocab)
    if not readable:
        logprob = np.zeros(0)
    elif cfg.categories and category is None:
        logprob = marginal(logprob_by_category(params, cfg, data), priors)
    else:
        if cfg.categories:
            data = replace(data, categories=np.full(len(data), category, dtype=np.int32))
        logprob = -model.nll_per_name(params, cfg, data, np.arange(len(data)))
    novel = None if training_names is None else np.array([name not in training_names for name in readable], bool)
    return Scores(Scored(readable, logprob, novel), skipped)
