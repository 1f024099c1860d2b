"""The names of one training run as the run sees them: folded, checked, encoded and split.

Shapes: N names, of which N_train are trained on and N_val held out for validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from dinogen.baselines import ngram_nll
from dinogen.config import MAX_CATEGORIES, TrainConfig
from dinogen.data import (Dataset, NameList, Vocab, as_name_list, check_name_list, clean_name, encode_names,
                          split_indices)
from dinogen.errors import DinogenError, plural

VAL_PROBE = 10_000  # validation names evaluated periodically (all of them when there are fewer)


def spread(idx: np.ndarray, at_most: int) -> np.ndarray:
    """At most `at_most` of idx, evenly spread over it (all of them when there are fewer)."""
    return idx[:: max(1, -(-len(idx) // at_most))]


def data_fingerprint(names: list[str], categories: list[str] | None = None) -> str:
    """SHA-256 of the names, one per line; with categories, each line is name<TAB>category."""
    lines = names if categories is None else [f"{name}\t{category}" for name, category in zip(names, categories)]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


@dataclass
class RunData:
    names: NameList  # as given, folded to lower case when the run lowercases
    category_names: list[str]  # the K categories, in the order of W_cat's rows; none for one list
    data_sha256: str  # stored in every checkpoint: a resumed run must see the same names
    vocab: Vocab
    data: Dataset  # the N names, encoded
    train_idx: np.ndarray  # (N_train,) the names trained on
    val_idx: np.ndarray  # (N_val,) the names held out (stratified by category)
    val_probe: np.ndarray  # at most VAL_PROBE of val_idx, evenly spread: what periodic evaluations read

    @classmethod
    def prepare(cls, names: NameList, cfg: TrainConfig) -> "RunData":
        """The run's data from the names read and the settings (lowercase, val_fraction, seed);
        one sentence of DinogenError when there is nothing to train on."""
        names = as_name_list(names)  # a library caller may pass a list of strings
        if cfg.lowercase:  # read_names folds already; names a library caller passes as written are folded here
            names = replace(names, names=[clean_name(name, lowercase=True) for name in names.names])
        check_name_list(names)  # one the reader did not make may hold what no checkpoint can
        if not names.names:
            skipped = (f" ({plural(names.skipped_long, 'name was', 'names were')} skipped for being longer than the "
                       "maximum name length)" if names.skipped_long else "")
            raise DinogenError(f"{names.source} holds no names{skipped}; give a file with one name per line.")
        category_names = names.category_names if names.categories is not None else []
        if names.categories is not None and len(category_names) < 2:  # it would condition on nothing, and
            raise DinogenError(  # classify would answer 1 for every name
                f"{names.source} gives only the category {category_names[0]!r}; a model of categories needs two "
                "or more, so add another list, or train on this one without --categories or name=.")
        if len(category_names) > MAX_CATEGORIES:
            raise DinogenError(f"{names.source} holds {len(category_names):,} categories; one model takes at "
                               f"most {MAX_CATEGORIES:,}, so group them or train several models.")
        labels = None if names.categories is None else [category_names[k] for k in names.categories]
        vocab = Vocab.from_names(names.names)
        data = encode_names(names.names, vocab, names.line_numbers, categories=names.categories)
        train_idx, val_idx = split_indices(len(data), cfg.val_fraction, cfg.seed, data.categories)
        return cls(names, category_names, data_fingerprint(names.names, labels), vocab, data, train_idx, val_idx,
                   spread(val_idx, VAL_PROBE))

    def bigram_loss(self) -> float | None:
        """Validation loss of an add-one bigram model fitted on the training split (with
        categories, one bigram per category, fitted on and scored with its own names)."""
        if len(self.val_idx) == 0:
            return None
        cats, V = self.data.categories, self.vocab.size
        if cats is None:
            return ngram_nll(self.data, self.train_idx, self.data, self.val_idx, V, n=2, alpha=1.0)
        total = 0.0
        for k in range(len(self.category_names)):
            train, val = self.train_idx[cats[self.train_idx] == k], self.val_idx[cats[self.val_idx] == k]
            if len(val):
                total += self.data.predictions(val) * ngram_nll(self.data, train, self.data, val, V, n=2, alpha=1.0)
        return total / self.data.predictions(self.val_idx)

    def category_table(self) -> dict:
        """The checkpoint's "categories" entry: each category's name and its number of names
        (both splits), in the order of W_cat's rows; nothing for a model of one list."""
        if not self.category_names:
            return {}
        counts = np.bincount(self.data.categories, minlength=len(self.category_names))
        return {"categories": [{"name": name, "names": int(count)}
                               for name, count in zip(self.category_names, counts)]}
