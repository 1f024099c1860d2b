"""What a checkpoint holds, as rows of plain text for `dinogen info`; the CLI draws the table."""

from __future__ import annotations

from dinogen.charts import sparkline
from dinogen.checkpoint import Checkpoint
from dinogen.errors import shown
from dinogen.model import count_params

CURVE_WIDTH = 40  # characters of a loss curve in `info`


def checkpoint_rows(ckpt: Checkpoint, full: bool = False) -> list[tuple[str, str]]:
    """What a checkpoint holds, as (label, value) rows of plain text; long values are cut
    short for a terminal, and kept whole with full (for a pipe or a file)."""
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
        ("vocabulary", f"{len(ckpt.vocab.chars)} characters and the end token: {chars if full else _clip(chars, 60)}"),
        ("case", "folded to lower case" if ckpt.lowercase else "kept"),
        *_category_rows(ckpt, full),
        ("data", f"{data.get('source', '?')}: {_count(data.get('names'))} name{'' if data.get('names') == 1 else 's'} "
                 f"({_count(data.get('val_names'))} held out for validation)"),
        ("data sha256", str(data.get("sha256", "-")) if full else str(data.get("sha256", "-"))[:16] + "…"),
        ("training names", "stored (for --novel and score)" if ckpt.data is not None else "not stored"),
        ("training", f"{_count(meta.get('step'))} steps in {_seconds(meta.get('seconds'))}, "
                     f"{train.get('optimizer', '?')} lr {train.get('lr', '?')}, batch {train.get('batch_size', '?')}, "
                     f"seed {train.get('seed', '?')}"),
        ("best validation loss", _best(best, data)),
    ]
    return [(label, shown(value)) for label, value in rows + _curve_rows(meta.get("history") or {})]


def _category_rows(ckpt, full: bool) -> list[tuple[str, str]]:
    """A row for the categories, each with its number of training names; none for one list."""
    table = ckpt.categories
    if table is None:
        return []
    listed = ", ".join(f"{name} {count:,}" for name, count in zip(table.names, table.counts))
    return [("categories", f"{len(table.names)}: {listed if full else _clip(listed, 80)}")]


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
