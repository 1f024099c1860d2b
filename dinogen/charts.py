"""Tiny charts made of characters, for tables in a terminal."""

from __future__ import annotations

import math
from typing import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"  # eight heights, lowest first


def sparkline(values: Sequence[float], width: int | None = None,
              low: float | None = None, high: float | None = None) -> str:
    """One block character per value, its height the value's place between low and high.

    Non-finite values are left out. With more values than `width`, consecutive
    values are averaged into `width` buckets. low and high default to the
    smallest and largest value; give both to draw several lines on one scale. A
    flat line is drawn at mid height.
    """
    points = [float(v) for v in values if v is not None and math.isfinite(v)]
    if width is not None and len(points) > width:
        points = [_mean(points[i * len(points) // width : (i + 1) * len(points) // width]) for i in range(width)]
    if not points:
        return ""
    low = min(points) if low is None else low
    high = max(points) if high is None else high
    if not (high > low and math.isfinite(high - low)):  # flat, or a range too wide for a float
        return BLOCKS[len(BLOCKS) // 2 - 1] * len(points)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[min(top, max(0, round((v - low) / (high - low) * top)))] for v in points)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
