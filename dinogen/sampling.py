"""Sampling names: a loop over characters, vectorised over names.

Shapes: N names still being written, V vocabulary, H hidden, M characters drawn
at most per name. Names that have produced the boundary token are dropped from
the batch, so the work per step shrinks as names end.

Candidates are drawn in blocks whose sizes follow one fixed schedule: small
first blocks (FIRST_BLOCKS), so that a few names cost a few rows, then BLOCK
each, so that many names fill the matrix products. Block k always holds the
same candidate numbers, is computed as one batch of exactly its size, and
draws its random numbers from its own stream, the k-th child of the seed's
SeedSequence. A candidate therefore depends only on the seed and its number,
bit for bit (BLAS may round a row differently when the number of rows changes,
which is why the sizes never depend on the request), and constraints keep the
first n accepted candidates in order. So the same seed gives the same names
however the output is chunked, and the first k names of a request for n > k
are the names of a request for k.

Every candidate also carries its log-probability under the model itself
(temperature 1, no top-k or top-p), prefix and end token included, so it equals
what `score` reports for the name.

A model with categories writes each candidate under one category: the one
spec.category names, or else one drawn for it, in the training shares, from its
block's stream before any character; its log-probability is then the one given
that category (`score --category`).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from dinogen import model
from dinogen.config import DEFAULT_MAX_LEN, DROUGHT
from dinogen.data import BOUNDARY, CategoryTable, Vocab
from dinogen.errors import DinogenError, plural
from dinogen.scoring import Scored

FIRST_BLOCKS = (16, 32, 64)  # sizes of the first blocks of candidates: `sample --n 10` draws 16 rows, not BLOCK
BLOCK = 128  # size of every later block; the schedule is fixed so that seeds reproduce
LOOK_AFTER = 1_000  # that many candidates in a row with no name: check whether --min-len is out of the model's reach
OUT_OF_REACH = 0.1  # ...which it is when fewer names than this are expected in all of DROUGHT's candidates
REACH_KEY = (0, 0)  # spawn key of the reach estimate's stream: two numbers, never a block's one
REACH_DRAFTS = 1_024  # drafts the estimate follows: with 128 its log spread over orders of ten, with 1,024 under one


def shortest_with(prefix: str, suffix: str) -> int:
    """The length of the shortest name that continues prefix (by one character or more) and ends
    with suffix: the two overlap by the most characters that prefix ends with and suffix starts with."""
    for overlap in range(min(len(suffix) - 1, len(prefix)), 0, -1):
        if prefix.endswith(suffix[:overlap]):
            return len(prefix) + len(suffix) - overlap
    return len(prefix) + len(suffix)


@dataclass
class SampleSpec:
    """How to draw names and which ones to keep."""

    temperature: float = 1.0  # divides the logits: below 1 safer and more typical, above 1 wilder
    top_k: int | None = None  # draw only among the k likeliest next characters; None: all
    top_p: float | None = None  # draw only among the likeliest characters holding this much probability; None: all
    prefix: str = ""  # every name starts with it; the model reads it and continues
    suffix: str = ""  # every name ends with it (by rejection)
    contains: str = ""  # every name holds it somewhere (by rejection)
    min_len: int = 1  # shortest name kept, in characters (by rejection)
    max_len: int = DEFAULT_MAX_LEN  # longest name kept; a draft still going after it is dropped
    novel: bool = False  # keep only names that are not in the training data
    unique: bool = False  # keep each name only the first time it is drawn
    max_attempts: int | None = None  # candidates to draw in all before giving up; None: see DROUGHT
    category: str | None = None  # with a model of categories: draw names of this one; None: each drawn in proportion

    def check(self, vocab: Vocab) -> None:
        """Raise DinogenError for a request that cannot be sampled with this vocabulary."""
        shortest = shortest_with(self.prefix, self.suffix) if self.prefix and self.suffix else 0
        problems = [
            (not 0 < self.temperature < math.inf, "the temperature must be a positive number"),
            (self.top_k is not None and self.top_k < 1, "top-k must be at least 1"),
            (self.top_p is not None and not 0 < self.top_p <= 1, "top-p must be above 0 and at most 1"),
            (self.min_len < 1, "the minimum length must be at least 1"),
            (self.max_len < self.min_len,
             f"the maximum length {self.max_len} (--max-len) is below the minimum {self.min_len} (--min-len)"),
            (max(len(self.suffix), len(self.contains)) > self.max_len,
             f"the suffix or the text to contain is longer than the maximum length {self.max_len}"),
            (len(self.prefix) >= self.max_len,
             f"the prefix leaves no room within the maximum length {self.max_len}: names continue it with at least "
             "one character"),
            (shortest > self.max_len,
             f"no name of at most {self.max_len} characters (--max-len) both continues the prefix {self.prefix!r} "
             f"and ends with {self.suffix!r}: the shortest has {shortest}"),
            (self.max_attempts is not None and self.max_attempts < 1, "the number of attempts must be at least 1"),
        ]
        for failed, message in problems:
            if failed:
                raise DinogenError(message + ".")
        for what, text in (("prefix", self.prefix), ("suffix", self.suffix), ("contains", self.contains)):
            unknown = vocab.unknown(text)
            if unknown is not None:
                raise DinogenError(
                    f"the {what} {text!r} has the character {unknown!r} that the model never saw, so no name can "
                    f"match; use only characters from: {''.join(vocab.chars)}"
                )

    def for_model(self, lowercase: bool) -> "SampleSpec":
        """The spec with its strings written as the model's names are: NFC, lower case if it was trained so."""
        def fold(text: str) -> str:
            text = unicodedata.normalize("NFC", text)
            return text.lower() if lowercase else text

        return replace(self, prefix=fold(self.prefix), suffix=fold(self.suffix), contains=fold(self.contains))

    @property
    def filtered(self) -> bool:
        """Whether the draw differs from the model's own distribution."""
        return self.temperature != 1.0 or self.top_k is not None or (self.top_p is not None and self.top_p < 1)


@dataclass
class Drafts:
    """One block of candidate names, before the constraints."""

    tokens: np.ndarray  # (N, M) int32 tokens drawn after the prefix, boundary-padded after the end
    lengths: np.ndarray  # (N,) int characters drawn after the prefix; M for a name that never ended
    logprob: np.ndarray  # (N,) float64 log-probability of the whole name and its end under the model
    cats: np.ndarray | None = None  # (N,) int the category each was written under; None without categories

    def first(self, k: int) -> "Drafts":
        """The first k candidates."""
        return Drafts(self.tokens[:k], self.lengths[:k], self.logprob[:k], None if self.cats is None else self.cats[:k])


def generate(
    params: dict[str, np.ndarray],
    cfg: model.ModelConfig,
    vocab: Vocab,
    n: int,
    spec: SampleSpec | None = None,
    seed: int | None = None,
    training_names: list[str] | set[str] | None = None,
    on_search: Callable[[int, int, int], None] | None = None,
    categories: CategoryTable | None = None,
) -> Iterator[Scored]:
    """Yield n names meeting spec, in chunks, as they are drawn.

    categories: the model's, when it has them (Checkpoint.categories): which
    spec.category names, and the shares in which the others are drawn.

    on_search(found, tried, drought), when given, is called after every block
    drawn, so a caller can say how the search goes while nothing turns up.

    It gives up after spec.max_attempts candidates in all, or without that,
    after DROUGHT candidates in a row of which none passed, or sooner, after
    LOOK_AFTER in a row, when reach() estimates that the model practically
    never writes a name as long as spec.min_len. No rule depends on n, so a
    request for k names gives up only where a request for more would have too:
    its names are always the first k of the larger request.
    When it gives up, the names found so far have been yielded and
    DinogenError says how many were found. training_names (all names of the
    training file) are needed for spec.novel and to mark each name novel or not.
    """
    spec = spec or SampleSpec()
    if n < 1:
        raise DinogenError("the number of names must be at least 1.")
    spec.check(vocab)
    check_novel(spec, training_names)
    known = None if training_names is None else set(training_names)
    seen: set[str] = set()
    root = np.random.SeedSequence(seed)
    chosen = category_rows(cfg, spec, categories)
    prefix = read_prefix(params, cfg, vocab.encode(spec.prefix), chosen)
    budget = spec.max_attempts
    found = tried = drought = block = 0  # drought: candidates since the last block that gave a name
    log_reach = None  # log P(a candidate draws the characters spec.min_len needs), once estimated
    while (tried < budget) if budget is not None else (drought < DROUGHT):
        rng = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(block,)))
        rows = prefix_rows(block_size(block), rng, chosen, categories, prefix)
        drafts = draw_block(params, cfg, block_size(block), rng, spec, prefix, rows)
        if budget is not None:
            drafts = drafts.first(budget - tried)  # drawn whole, so seeds reproduce; only the budget is considered
        tried += len(drafts.lengths)
        block += 1
        chunk = _accept(drafts, vocab, spec, known, seen, n - found, categories)
        drought = 0 if chunk.names else drought + len(drafts.lengths)
        if budget is None and drought >= LOOK_AFTER and log_reach is None:
            log_reach = reach(params, cfg, spec, prefix, np.random.default_rng(
                np.random.SeedSequence(root.entropy, spawn_key=REACH_KEY)), chosen, categories)
            if log_reach < math.log(OUT_OF_REACH / DROUGHT):
                raise DinogenError(out_of_reach(found, n, tried, spec, log_reach, prefix.length))
        if on_search is not None:
            on_search(found + len(chunk.names), tried, drought)
        if chunk.names:
            found += len(chunk.names)
            yield chunk
        if found == n:
            return
    raise DinogenError(
        f"only {found:,} of {plural(n, 'name')}{describe(spec)} turned up in {plural(tried, 'attempt')}; "
        "loosen the constraints or allow more with --max-attempts."
    )


def reach(params: dict[str, np.ndarray], cfg: model.ModelConfig, spec: SampleSpec, prefix: Prefix,
          rng: np.random.Generator, chosen: np.ndarray | None = None, categories: CategoryTable | None = None,
          drafts: int = REACH_DRAFTS) -> float:
    """Estimated log-probability that a candidate goes on past the prefix for the
    characters spec.min_len needs, instead of ending sooner (-inf: never).

    A particle filter, unbiased: `drafts` candidates are written with the end
    token forbidden; at each character the estimate is multiplied by their mean
    probability of not ending there, and they are redrawn in proportion to it,
    so the ones a long name would pass through carry on. Even a length that one
    candidate in 10^20 reaches is so estimated in about a second, where
    rejection would draw for ever.
    """
    need = max(spec.min_len - prefix.length, 1)  # characters to draw after the prefix
    rows = prefix_rows(drafts, rng, chosen, categories, prefix)
    states, cats = _take(prefix.states, prefix.cats, rows)
    logits = prefix.logits[rows]  # (N, V)
    log_reach = 0.0
    for t in range(need):
        top, weights, _ = _softmax_parts(logits)
        weights = (_filter(logits, top, spec) if spec.filtered else weights).astype(np.float64)  # (N, V) as drawn
        total = weights.sum(axis=1)  # (N,)
        weights[:, BOUNDARY] = 0.0  # kept from ending
        going = weights.sum(axis=1) / total  # (N,) P(not the end token here | the draft so far)
        if going.sum() == 0:
            return -math.inf
        log_reach += math.log(going.mean())
        keep = rng.choice(drafts, size=drafts, p=going / going.sum())  # (N,) drafts redrawn by that probability
        x = _draw(weights[keep], 1 - rng.random(drafts))  # never the end token
        if t + 1 < need:
            states, cats = _take(states, cats, keep)
            logits, states = model.step(params, cfg, x, states, prefix.table, cats)
    return log_reach


def out_of_reach(found: int, n: int, tried: int, spec: SampleSpec, log_reach: float, prefix_length: int) -> str:
    """The sentence for a request given up because reach() found spec.min_len, or any
    character after the prefix, out of reach."""
    if spec.min_len > prefix_length + 1:
        what, remedy = f"goes on to {plural(spec.min_len, 'character')}", "lower --min-len"
    else:  # the prefix alone meets --min-len: what is out of reach is a character after it
        what, remedy = f"writes a character after {spec.prefix!r}", "change --prefix"
    if log_reach == -math.inf:  # only the end token is left by --top-k, --top-p or a temperature near 0
        odds, remedy = "never", remedy + " or loosen --top-k, --top-p or --temperature"
    else:
        odds = f"about once in 10^{-log_reach / math.log(10):.0f} candidates"
        remedy += ", or insist with --max-attempts"
    return (
        f"only {found:,} of {plural(n, 'name')}{describe(spec)} turned up in {plural(tried, 'attempt')}, and "
        f"more are out of reach: this model {what} {odds} (estimated from drafts kept from ending); {remedy}."
    )


def category_rows(cfg: model.ModelConfig, spec: SampleSpec, categories: CategoryTable | None) -> np.ndarray | None:
    """The categories the prefix is read under: spec.category's alone, every one, or None without categories."""
    if not cfg.categories:
        if spec.category is not None:
            raise DinogenError("this model was trained on one list, so it has no categories to choose from; "
                               "leave out --category.")
        return None
    if categories is None:
        raise DinogenError("the model has categories but no table of them; retrain it.")
    if spec.category is not None:
        return np.array([categories.index(spec.category)])
    return np.arange(cfg.categories)


def prefix_rows(n: int, rng: np.random.Generator, chosen: np.ndarray | None,
                categories: CategoryTable | None, prefix: Prefix) -> np.ndarray:
    """(n,) the row of the prefix each candidate of a block continues: its category's. Drawn
    from rng, before any character, when every category is open: in the training shares,
    or with a prefix in P(category | prefix), each share times P(prefix | category), as the
    names that start so are spread over the categories when drawn without the prefix."""
    if chosen is None or len(chosen) == 1:
        return np.zeros(n, dtype=np.int64)
    weights = categories.priors
    if prefix.length:
        weights = weights * np.exp(prefix.logprob - prefix.logprob.max())
        weights = weights / weights.sum()
    return rng.choice(len(chosen), size=n, p=weights)


def check_novel(spec: SampleSpec, training_names) -> None:
    """Raise DinogenError when spec asks for novel names but the training names are unknown."""
    if spec.novel and training_names is None:
        raise DinogenError(
            "this checkpoint does not store the names it was trained on (it predates them), so --novel "
            "cannot tell new names from known ones; retrain it with this version of dinogen."
        )


def block_size(k: int) -> int:
    """Candidates in block k of every request."""
    return FIRST_BLOCKS[k] if k < len(FIRST_BLOCKS) else BLOCK


def describe(spec: SampleSpec) -> str:
    """The constraints in words, after a space; empty when there are none."""
    parts = [f"starting with {spec.prefix!r}"] if spec.prefix else []
    parts += [f"ending with {spec.suffix!r}"] if spec.suffix else []
    parts += [f"containing {spec.contains!r}"] if spec.contains else []
    if spec.min_len == spec.max_len:
        parts.append(f"of exactly {plural(spec.min_len, 'character')}")
    elif (spec.min_len, spec.max_len) != (1, DEFAULT_MAX_LEN):
        parts.append(f"of {spec.min_len} to {spec.max_len} characters")
    parts += [f"of the category {spec.category!r}"] if spec.category is not None else []
    parts += ["not in the training data"] if spec.novel else []
    parts += ["each different from the others"] if spec.unique else []
    return " " + ", ".join(parts) if parts else ""


def _accept(drafts: Drafts, vocab: Vocab, spec: SampleSpec, known: set | None, seen: set, wanted: int,
            categories: CategoryTable | None = None) -> Scored:
    """The first `wanted` drafts that meet the spec, in order; updates `seen` for spec.unique."""
    ended = drafts.lengths < drafts.tokens.shape[1]  # drew its end token within the M draws
    continued = drafts.lengths > 0  # at least one character drawn: never the bare prefix (or an empty name)
    rows = np.flatnonzero(ended & continued & (drafts.lengths + len(spec.prefix) >= spec.min_len))
    names = [spec.prefix + name for name in vocab.decode_rows(drafts.tokens[rows])]
    keep = [
        i for i, name in enumerate(names)
        if name.endswith(spec.suffix) and spec.contains in name and not (spec.novel and name in known)
    ]
    if spec.unique:
        unique = []
        for i in keep:
            if names[i] not in seen and len(unique) < wanted:
                seen.add(names[i])
                unique.append(i)
        keep = unique
    keep = keep[:wanted]
    names = [names[i] for i in keep]
    novel = None if known is None else np.array([name not in known for name in names], dtype=bool)
    cats = None if drafts.cats is None else [categories.names[k] for k in drafts.cats[rows[keep]]]
    return Scored(names, drafts.logprob[rows[keep]], novel, cats)


@dataclass
class Prefix:
    """The model after reading the boundary token and the prefix: one row, or one per
    category read (R rows)."""

    states: list[tuple]  # per layer, the cell state arrays, each (R, H)
    logits: np.ndarray  # (R, V) scores of the first character after the prefix
    logprob: np.ndarray  # (R,) float64 log-probability of the prefix characters
    length: int  # characters in the prefix
    table: np.ndarray  # (V, G*H) model.input_table, shared by every block drawn after the prefix
    cats: np.ndarray | None = None  # (R,) the category of each row; None without categories


def read_prefix(params: dict[str, np.ndarray], cfg: model.ModelConfig, tokens: np.ndarray,
                cats: np.ndarray | None = None) -> Prefix:
    """Feed the boundary token and then the prefix, keeping the prefix's log-probability: one
    row, or with cats (R,) one row under each of those categories."""
    rows = 1 if cats is None else len(cats)
    table = model.input_table(params, cfg)
    states = model.initial_states(cfg, rows, params["W_hy"].dtype)
    logits, states = model.step(params, cfg, np.full(rows, BOUNDARY, dtype=np.int32), states, table, cats)
    logprob = np.zeros(rows)
    for token in tokens:
        x = np.full(rows, token, dtype=np.int32)
        top, _, log_norm = _softmax_parts(logits)
        logprob += _log_softmax_at(logits, x, top, log_norm)
        logits, states = model.step(params, cfg, x, states, table, cats)
    return Prefix(states, logits, logprob, len(tokens), table, cats)


def _softmax_parts(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row maxima top: (N, 1), the unnormalised softmax exp(logits - top): (N, V),
    and the log of its row sums: (N,) float64."""
    top = logits.max(axis=1, keepdims=True)
    weights = np.exp(logits - top)
    return top, weights, np.log(weights.sum(axis=1, dtype=np.float64))


def _log_softmax_at(logits: np.ndarray, x: np.ndarray, top: np.ndarray, log_norm: np.ndarray) -> np.ndarray:
    """log softmax(logits)[i, x[i]] per row, from _softmax_parts: (N,) float64."""
    return (logits[np.arange(len(x)), x] - top[:, 0]) - log_norm


def draw_block(
    params: dict[str, np.ndarray],
    cfg: model.ModelConfig,
    n: int,
    rng: np.random.Generator,
    spec: SampleSpec,
    prefix: Prefix,
    rows: np.ndarray | None = None,
) -> Drafts:
    """Draw n candidates continuing the prefix, until each ends or spec.max_len is passed;
    candidate i continues the prefix's row rows[i] (row 0 for all by default)."""
    rows = np.zeros(n, dtype=np.int64) if rows is None else rows
    draws = spec.max_len - prefix.length + 1  # characters up to max_len, then the end token
    tokens = np.zeros((n, draws), dtype=np.int32)
    lengths = np.full(n, draws, dtype=np.int64)
    logprob = prefix.logprob[rows]  # (n,) float64
    alive = np.arange(n)  # rows still being written
    states, all_cats = _take(prefix.states, prefix.cats, rows)  # all_cats: (n,) each candidate's category
    logits = prefix.logits[rows]  # (N, V)
    cats = all_cats
    for t in range(draws):
        top, weights, log_norm = _softmax_parts(logits)  # the model's own softmax, unnormalised
        u = rng.random(len(alive), dtype=weights.dtype)  # (N,) in [0, 1)
        x = _draw(_filter(logits, top, spec) if spec.filtered else weights, 1 - u)
        logprob[alive] += _log_softmax_at(logits, x, top, log_norm)
        tokens[alive, t] = x
        going = x != BOUNDARY
        if not going.all():
            lengths[alive[~going]] = t
            alive, x = alive[going], x[going]
            states, cats = _take(states, cats, going)
            if len(alive) == 0:
                break
        if t + 1 < draws:
            logits, states = model.step(params, cfg, x, states, prefix.table, cats)  # (N, V)
    return Drafts(tokens, lengths, logprob, all_cats)


def _take(states: list[tuple], cats: np.ndarray | None, index: np.ndarray) -> tuple[list[tuple], np.ndarray | None]:
    """The rows index picks (integers or a mask) of every layer's state arrays and of the rows' categories."""
    return [tuple(s[index] for s in state) for state in states], None if cats is None else cats[index]


def _filter(logits: np.ndarray, top: np.ndarray, spec: SampleSpec) -> np.ndarray:
    """Unnormalised probabilities to draw from: temperature, then top-k, then top-p. (N, V) float64

    In float64, so that a temperature or top-p as small as 1e-300 still keeps
    the likeliest character (in float32 they round to 0); the likeliest
    character always keeps its weight 1.
    """
    with np.errstate(over="ignore"):  # a tiny temperature sends the unlikely to -inf, i.e. weight 0
        weights = np.exp((logits - top).astype(np.float64) / spec.temperature)  # (N, V), the likeliest at 1
    V = weights.shape[1]
    if spec.top_k is not None and spec.top_k < V:
        kth = np.partition(weights, V - spec.top_k, axis=1)[:, V - spec.top_k, None]  # (N, 1)
        weights[weights < kth] = 0.0
    if spec.top_p is not None and spec.top_p < 1:
        order = np.argsort(-weights, axis=1, kind="stable")  # (N, V) likeliest first
        ranked = np.take_along_axis(weights, order, axis=1)
        before = np.cumsum(ranked, axis=1) - ranked  # (N, V) mass of the likelier characters
        outside = before >= spec.top_p * ranked.sum(axis=1, keepdims=True)  # (N, V) beyond the nucleus
        outside[:, 0] = False  # the likeliest is always inside, even when top_p * total rounds to 0
        ranked[outside] = 0.0
        np.put_along_axis(weights, order, ranked, axis=1)
    return weights


def _draw(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One categorical draw per row by inverting the cumulative distribution.

    weights: (N, V) unnormalised probabilities; u: (N,) uniform in (0, 1]. The
    draw is the first column whose cumulative weight reaches u times the total,
    which is never a column of weight 0.
    """
    cdf = np.cumsum(weights, axis=1)  # (N, V)
    threshold = u.astype(cdf.dtype) * cdf[:, -1]  # (N,)
    return np.minimum((cdf < threshold[:, None]).sum(axis=1), weights.shape[1] - 1).astype(np.int32)


def sample(
    params: dict[str, np.ndarray],
    cfg: model.ModelConfig,
    vocab: Vocab,
    n: int,
    seed: int | np.random.Generator | None = None,
    temperature: float = 1.0,
    max_len: int = DEFAULT_MAX_LEN,
) -> list[str]:
    """n new names as strings: generate() without constraints, collected.

    seed may also be a NumPy Generator, as callers written before generate()
    pass one; the seed is then drawn from it.
    """
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    spec = SampleSpec(temperature=temperature, max_len=max_len)
    return [name for chunk in generate(params, cfg, vocab, n, spec, seed) for name in chunk.names]
