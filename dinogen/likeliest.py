"""The likeliest names: a beam search for the n names the model finds most probable.

Shapes: K hypotheses in the beam (at most its width W), V vocabulary, H hidden.

A hypothesis is the prefix and the characters written after it so far. At each
step every hypothesis ends or grows by one character, and the K of them advance
through model.step together, as one batch of rows. Ending (the boundary token)
finishes a name: when it is long enough and passes the end-of-name constraints
(suffix, contains, novel) it is offered to the results, which hold the n best.
Growing gives K x (V - 1) expansions, of which the W likeliest become the next
beam. Log-probabilities only fall as characters are added, so an expansion no
likelier than the n-th result can never beat it and is dropped: the search ends
when none is left, or at max_len. Work is at most max_len steps of W rows, and
memory W rows of state and W x V log-probabilities.

The width is the only approximation: an expansion dropped for want of room in
the beam might have led to a likelier name. The search keeps the likeliest such
expansion, and when even that is no likelier than the n-th name found, nothing
was lost and the answer is proven the true top n (Found.exact). A suffix or
text to contain also steers: an expansion with no room left within max_len to
end in the suffix or to hold the text is dropped, as no name can come of it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from dinogen import model
from dinogen.config import DEFAULT_BEAM_WIDTH
from dinogen.data import BOUNDARY, CategoryTable, Vocab
from dinogen.errors import DinogenError, plural
from dinogen.sampling import SampleSpec, category_rows, check_novel, describe, read_prefix
from dinogen.scoring import Scored


@dataclass
class Found:
    """The likeliest names found, and whether they are proven the likeliest."""

    scored: Scored  # the names, likeliest first, with their log-probability as `score` reports it
    exact: bool  # no name meeting the constraints is likelier than the last one (with fewer than n: no other exists)


@dataclass
class _Beam:
    """The live hypotheses."""

    texts: list[str]  # K names so far, prefix included
    logprob: np.ndarray  # (K,) float64 log-probability of each text, without an end
    states: list[tuple]  # per layer, the cell state arrays, each (K, H)
    logits: np.ndarray  # (K, V) scores of the token after each text


class _Results:
    """The n likeliest finished names so far: a min-heap of (logprob, name), never above n."""

    def __init__(self, n: int) -> None:
        self.n, self.heap = n, []

    @property
    def threshold(self) -> float:
        """The log-probability a new name must beat to enter: the n-th best, or -inf while there are fewer."""
        return self.heap[0][0] if len(self.heap) == self.n else -math.inf

    def offer(self, logprob: float, name: str) -> None:
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, (logprob, name))
        elif logprob > self.heap[0][0]:
            heapq.heapreplace(self.heap, (logprob, name))

    def best_first(self) -> list[tuple[float, str]]:
        return sorted(self.heap, reverse=True)


def likeliest(
    params: dict[str, np.ndarray],
    cfg: model.ModelConfig,
    vocab: Vocab,
    n: int,
    spec: SampleSpec | None = None,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    training_names: list[str] | set[str] | None = None,
    categories: CategoryTable | None = None,
) -> Found:
    """The n likeliest names meeting spec's prefix, suffix, contains, lengths and novel, likeliest first.

    The ranking is the model's own probability, so spec must not set a
    temperature, top-k or top-p; unique is implied and max_attempts unused.
    Fewer than n names come back when the search finds no more. training_names
    (all names of the training file) are needed for spec.novel and to mark each
    name novel or not.

    A model with categories (categories: its table) searches spec.category's
    names; without one, every category's, ranked by P(name, category), each name
    under its likeliest category; the logprob is log P(name | category), as sample's.
    """
    spec = spec or SampleSpec()
    _check(n, spec, beam_width, training_names)
    spec.check(vocab)
    known = None if training_names is None else set(training_names)
    chosen = category_rows(cfg, spec, categories)
    if chosen is None:
        best, exact = _search(params, cfg, vocab, n, spec, beam_width, known, None)
        return _found(best, exact, known, None)
    offers, exact = {}, True  # name -> (joint log-probability, logprob, category)
    for k in chosen.tolist():
        best, exact_k = _search(params, cfg, vocab, n, spec, beam_width, known, k)
        exact &= exact_k
        for logprob, name in best:
            joint = logprob + math.log(categories.priors[k]) if len(chosen) > 1 else logprob
            if name not in offers or joint > offers[name][0]:
                offers[name] = (joint, logprob, categories.names[k])
    ranked = sorted(offers.items(), key=lambda item: -item[1][0])[:n]
    return _found([(logprob, name) for name, (_, logprob, _) in ranked], exact, known,
                  [category for _, (_, _, category) in ranked])


def _found(best: list[tuple[float, str]], exact: bool, known: set | None, cats: list[str] | None) -> Found:
    names = [name for _, name in best]
    novel = None if known is None else np.array([name not in known for name in names], dtype=bool)
    return Found(Scored(names, np.array([logprob for logprob, _ in best]), novel, cats), exact)


def _search(params, cfg: model.ModelConfig, vocab: Vocab, n: int, spec: SampleSpec, beam_width: int,
            known: set | None, category: int | None) -> tuple[list[tuple[float, str]], bool]:
    """The beam search under one category (or none): the (logprob, name) pairs, best first, and
    whether they are proven the likeliest."""
    cats = None if category is None else np.array([category])
    prefix = read_prefix(params, cfg, vocab.encode(spec.prefix), cats)
    beam = _Beam([spec.prefix], prefix.logprob, prefix.states, prefix.logits)
    results = _Results(n)
    cut = -math.inf  # the likeliest expansion dropped for want of room in the beam
    for length in range(prefix.length, spec.max_len + 1):
        logp = _log_softmax(beam.logits)  # (K, V)
        if length > prefix.length and length >= spec.min_len:
            _finish(beam, beam.logprob + logp[:, BOUNDARY], results, spec, known)
        if length == spec.max_len:
            break
        parents, tokens, logprob, cut_here = _grow(beam, logp, results.threshold, beam_width, spec, vocab)
        cut = max(cut, cut_here)
        if len(tokens) == 0:
            break
        beam = _advance(params, cfg, vocab, beam, parents, tokens, logprob, prefix.table, category)
    best = results.best_first()
    exact = cut <= results.threshold if len(best) == n else cut == -math.inf
    return best, exact


def shortfall(found: Found, n: int, spec: SampleSpec, beam_width: int) -> str | None:
    """The sentence that says fewer than n names were found, and what to do; None when all n were."""
    if len(found.scored.names) == n:
        return None
    counted = f"only {len(found.scored.names):,} of {plural(n, 'name')}{describe(spec)}"
    if found.exact:
        return f"{counted} exist; loosen the constraints."
    return (f"{counted} turned up in a beam of width {beam_width:,}; a wider --beam-width may find more, "
            "or loosen the constraints.")


def _check(n: int, spec: SampleSpec, beam_width: int, training_names) -> None:
    """Raise DinogenError for a request the search cannot answer."""
    if n < 1:
        raise DinogenError("the number of names must be at least 1.")
    if beam_width < 1:
        raise DinogenError("the beam width must be at least 1.")
    if spec.filtered:
        raise DinogenError("the likeliest names are ranked by the model's own probability, so a temperature, "
                           "top-k or top-p does not apply to them.")
    check_novel(spec, training_names)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """(K, V) float64 log-probabilities of the next token for each row of logits (K, V)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _finish(beam: _Beam, ended: np.ndarray, results: _Results, spec: SampleSpec, known: set | None) -> None:
    """Offer the results each hypothesis that ends here, with ended: (K,) its log-probability with the end."""
    for row in np.argsort(-ended, kind="stable"):
        if ended[row] <= results.threshold:
            return  # the rest are no likelier
        name = beam.texts[row]
        if name.endswith(spec.suffix) and spec.contains in name and not (spec.novel and name in known):
            results.offer(float(ended[row]), name)


def _grow(beam: _Beam, logp: np.ndarray, threshold: float, width: int, spec: SampleSpec, vocab: Vocab):
    """The expansions kept for the next beam, likeliest first: their parent rows (W,), tokens (W,) and
    log-probabilities (W,), and the log-probability of the likeliest one dropped for want of width
    (-inf when none was)."""
    grown = (beam.logprob[:, None] + logp[:, BOUNDARY + 1:]).ravel()  # (K * (V - 1),) one more character
    hopeful = np.flatnonzero(grown > threshold)  # the others cannot beat the n-th name found
    ranked = hopeful[np.argsort(-grown[hopeful], kind="stable")]
    if _room_is_short(len(beam.texts[0]) + 1, spec):
        ranked = _can_still_match(ranked, beam, vocab, spec, width + 1)
    kept = ranked[:width]
    cut = float(grown[ranked[width]]) if len(ranked) > width else -math.inf
    parents, chars = np.divmod(kept, vocab.size - 1)
    return parents, (chars + BOUNDARY + 1).astype(np.int32), grown[kept], cut


def _room_is_short(length: int, spec: SampleSpec) -> bool:
    """Whether a text of this length may lack the room within max_len to end in the suffix or hold the text."""
    return spec.max_len - length < max(len(spec.suffix), len(spec.contains))


def _can_still_match(ranked: np.ndarray, beam: _Beam, vocab: Vocab, spec: SampleSpec, wanted: int) -> np.ndarray:
    """The first `wanted` expansions of ranked (indices into the (K, V - 1) expansions) that can still
    end in the suffix and hold the text within max_len, in order."""
    matching = []
    for index in ranked:
        parent, char = divmod(int(index), vocab.size - 1)  # expansion `char` feeds token char + 1
        text = beam.texts[parent] + vocab.char(char + 1)
        if len(text) + _characters_needed(text, spec) <= spec.max_len:
            matching.append(index)
            if len(matching) == wanted:
                break
    return np.array(matching, dtype=np.int64)


def _characters_needed(text: str, spec: SampleSpec) -> int:
    """The fewest characters text must still grow by to end in the suffix and, apart, to hold the
    text to contain: the larger of the two, a lower bound of what both need together."""
    def to_complete(target: str) -> int:
        overlap = next(j for j in range(len(target), -1, -1) if text.endswith(target[:j]))
        return len(target) - overlap

    return max(to_complete(spec.suffix), 0 if spec.contains in text else to_complete(spec.contains))


def _advance(params, cfg, vocab: Vocab, beam: _Beam, parents: np.ndarray, tokens: np.ndarray,
             logprob: np.ndarray, table: np.ndarray, category: int | None) -> _Beam:
    """The next beam: each kept expansion's parent row (W,) fed its token (W,), as one batch."""
    states = [tuple(s[parents] for s in state) for state in beam.states]
    cats = None if category is None else np.full(len(tokens), category)
    logits, states = model.step(params, cfg, tokens, states, table, cats)
    texts = [beam.texts[p] + vocab.char(t) for p, t in zip(parents.tolist(), tokens.tolist())]
    return _Beam(texts, logprob, states, logits)
