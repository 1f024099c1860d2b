"""Summaries for people: a batch of sampled names against the training data,
and what a checkpoint holds. Plain data out; the CLI draws the tables."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from dinogen.charts import sparkline
from dinogen.checkpoint import Checkpoint
from dinogen.model import count_params

SHORTEST_ENDING = 3  # characters in the shortest ending counted
LONGEST_ENDING = 6  # ... and in the longest ("saurus")
COVER = 0.75  # a shorter ending is left out when one longer ending accounts for this share of its names
CURVE_WIDTH = 40  # characters of a loss curve in `info`


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


def checkpoint_rows(ckpt: Checkpoint) -> list[tuple[str, str]]:
    """What a checkpoint holds, as (label, value) rows of plain text."""
    meta, cfg = ckpt.meta, ckpt.model_config
    train = meta.get("train") or {}
    data = meta.get("data") or {}
    best = meta.get("best") or {}
    chars = "".join(ckpt.vocab.chars)
    rows = [
        ("format", f"{meta.get('format')} version {meta.get('format_version')}"),
        ("made by", f"dinogen {meta.get('dinogen_version', '?')}"),
        ("cell", f"{cfg.cell}, {cfg.layers} layer{'s' if cfg.layers > 1 else ''} of {cfg.hidden} hidden units"
                 + (f", embedding {cfg.embed_dim}" if cfg.embed_dim else "")
                 + (f", dropout {cfg.dropout:g}" if cfg.dropout else "")),
        ("parameters", f"{count_params(ckpt.inference_params()):,}"),
        ("vocabulary", f"{len(ckpt.vocab.chars)} characters and the end token: {_clip(chars, 60)}"),
        ("case", "folded to lower case" if ckpt.lowercase else "kept"),
        ("data", f"{data.get('source', '?')}: {_count(data.get('names'))} names "
                 f"({_count(data.get('val_names'))} held out for validation)"),
        ("data sha256", str(data.get("sha256", "-"))[:16] + "…"),
        ("training names", "stored (for --novel and score)" if ckpt.data is not None else "not stored"),
        ("training", f"{_count(meta.get('step'))} steps in {_seconds(meta.get('seconds'))}, "
                     f"{train.get('optimizer', '?')} lr {train.get('lr', '?')}, batch {train.get('batch_size', '?')}, "
                     f"seed {train.get('seed', '?')}"),
        ("best validation loss", _best(best, data)),
    ]
    return rows + _curve_rows(meta.get("history") or {})


def _best(best: dict, data: dict) -> str:
    if best.get("val_loss") is not None:
        return f"{best['val_loss']:.4f} nats/char at step {best['step']:,}"
    if data.get("val_names") == 0:
        return "none: no names held out, so the last parameters are used"
    return "-"


def _curve_rows(history: dict) -> list[tuple[str, str]]:
    curves = {
        label: [loss for _, loss in history.get(key) or []]
        for label, key in (("training loss (smoothed)", "train"), ("validation loss", "val"))
    }
    every = [loss for losses in curves.values() for loss in losses]
    if not every:
        return []
    low, high = min(every), max(every)
    return [
        (label, f"{sparkline(losses, CURVE_WIDTH, low, high)}  {losses[0]:.3f} → {losses[-1]:.3f}" if losses else "-")
        for label, losses in curves.items()
    ]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _seconds(value) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else "? s"
