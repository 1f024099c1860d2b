"""Count-based baselines on the same split: the yardsticks for the network's loss.

An n-gram model with add-alpha smoothing predicts each character (and the end of
the name) from the n - 1 tokens before it, padding the start with boundary
tokens. Shapes: C characters, N names, P = C + N predictions.
"""

from __future__ import annotations

import math

import numpy as np

from dinogen.data import BOUNDARY, PAD, Batch, Dataset, make_batch


def _contexts_and_targets(batch: Batch, n: int, vocab_size: int):
    """Context ids (P,) and targets (P,) of every prediction of a batch of names, whose
    input at step t is the token at t - 1, in the order of batch.real."""
    real = batch.y != PAD  # (T, B) where a prediction is made
    before = batch.x  # (T, B) the token 1 step back; boundary before the name
    context = np.zeros(batch.x.shape, dtype=np.int64)
    for _ in range(1, n):
        context = context * vocab_size + before
        before = np.vstack([np.full((1, before.shape[1]), BOUNDARY, before.dtype), before[:-1]])  # one more back
    return context[real], batch.y[real]


def _logprobs(train: Dataset, train_idx, test: Dataset, test_idx, vocab_size: int, n: int,
              alpha: float) -> tuple[np.ndarray, Batch]:
    """log P (P,) in nats of every prediction of the test names under an add-alpha n-gram
    fitted on the train names, and the batch of the test names they come in."""
    ctx, y = _contexts_and_targets(make_batch(train, np.asarray(train_idx)), n, vocab_size)
    pair_keys, pair_counts = np.unique(ctx * vocab_size + y, return_counts=True)
    ctx_keys, ctx_counts = np.unique(ctx, return_counts=True)
    batch = make_batch(test, np.asarray(test_idx))
    test_ctx, test_y = _contexts_and_targets(batch, n, vocab_size)
    pair = _lookup(pair_keys, pair_counts, test_ctx * vocab_size + test_y)
    total = _lookup(ctx_keys, ctx_counts, test_ctx)
    return np.log((pair + alpha) / (total + alpha * vocab_size)), batch


def ngram_nll(train: Dataset, train_idx, test: Dataset, test_idx, vocab_size: int, n: int, alpha: float) -> float:
    """Mean NLL (nats per prediction) on the test names of an add-alpha n-gram
    fitted on the train names."""
    logprob, _ = _logprobs(train, train_idx, test, test_idx, vocab_size, n, alpha)
    return float(-logprob.mean())


def ngram_logprob(train: Dataset, train_idx, test: Dataset, test_idx, vocab_size: int, n: int,
                  alpha: float) -> np.ndarray:
    """(len(test_idx),) log-probability in nats of each test name, its end included, under
    an add-alpha n-gram fitted on the train names: a bigram per category, fitted on each
    category's names over one vocabulary, classifies names by Bayes' rule."""
    logprob, batch = _logprobs(train, train_idx, test, test_idx, vocab_size, n, alpha)  # (P,) by batch.real
    width = batch.x.shape[1]
    per_column = np.bincount(batch.real % width, weights=logprob, minlength=width)  # (B,) by batch column
    by_name = np.zeros(len(test))
    by_name[batch.names] = per_column
    return by_name[np.asarray(test_idx)]


def _lookup(keys: np.ndarray, counts: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """counts[keys == q] for each query, 0 where the key is absent."""
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[pos] == queries, counts[pos], 0).astype(np.float64)


def uniform_nll(vocab_size: int) -> float:
    return math.log(vocab_size)
