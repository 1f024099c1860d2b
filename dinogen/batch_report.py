"""A batch of sampled names against the training data: shares unique and novel,
lengths and the common endings (`sample --report`). Plain data out; the CLI draws the table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

SHORTEST_ENDING = 3  # characters in the shortest ending counted
LONGEST_ENDING = 6  # ... and in the longest ("saurus")
COVER = 0.75  # a shorter ending is left out when one longer ending accounts for this share of its names


@dataclass
class Ending:
    text: str  # the last characters of the names
    share: float  # share of the batch's names ending with it
    training_share: float | None  # share of the training names ending with it; None when unknown


@dataclass
class BatchSummary:
    names: int  # names in the batch
    unique_share: float  # distinct names / names
    novel_share: float | None  # names not in the training data / names; None when unknown
    mean_length: float  # characters per name in the batch
    training_mean_length: float | None  # characters per training name; None when unknown
    endings: list[Ending]  # the most common endings, most common first


def batch_summary(names: list[str], training_names: list[str] | None = None, top: int = 5) -> BatchSummary:
    """How a batch of names compares with the training data."""
    if not names:
        raise ValueError("a batch summary needs at least one name")
    known = None if training_names is None else set(training_names)
    endings = [
        Ending(text, count / len(names), None if not training_names else _share_ending(training_names, text))
        for text, count in common_endings(names, top)
    ]
    return BatchSummary(
        names=len(names),
        unique_share=len(set(names)) / len(names),
        novel_share=None if known is None else sum(name not in known for name in names) / len(names),
        mean_length=sum(map(len, names)) / len(names),
        training_mean_length=sum(map(len, training_names)) / len(training_names) if training_names else None,
        endings=endings,
    )


def common_endings(names: list[str], top: int = 5) -> list[tuple[str, int]]:
    """The most common endings of SHORTEST_ENDING to LONGEST_ENDING characters, with counts.

    An ending counts only for names longer than it, and needs two names. An
    ending is left out when a longer one accounts for most (COVER) of its names:
    with "-saurus" in the list, "-urus" and "-rus" add nothing.
    """
    counts = Counter(
        name[-k:] for name in names for k in range(SHORTEST_ENDING, LONGEST_ENDING + 1) if len(name) > k
    )
    candidates = {text: count for text, count in counts.items() if count >= 2}
    longest_cover: dict[str, int] = {}  # ending -> most names of any longer ending that ends with it
    for text, count in candidates.items():
        for k in range(SHORTEST_ENDING, len(text)):
            longest_cover[text[-k:]] = max(longest_cover.get(text[-k:], 0), count)
    kept = [(text, count) for text, count in candidates.items() if longest_cover.get(text, 0) < COVER * count]
    kept.sort(key=lambda item: (-item[1], -len(item[0]), item[0]))
    return kept[:top]


def _share_ending(names: list[str], ending: str) -> float:
    return sum(len(name) > len(ending) and name.endswith(ending) for name in names) / len(names)
