"""The learning rate over a run: a cosine from the peak to a floor, along the steps or the clock."""

from __future__ import annotations

import numpy as np


def cosine_lr(base: float, progress: float, floor_ratio: float) -> float:
    """Cosine decay from base at progress 0 to base * floor_ratio at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    return base * (floor_ratio + (1 - floor_ratio) * 0.5 * (1 + np.cos(np.pi * progress)))


def budget_spent(step: int, elapsed: float, steps: int, max_seconds: float | None) -> float:
    """The share of the run spent (0..1): by steps or by time, whichever is further, so that a
    time limit that ends a run early still ends it at the floor of the cosine."""
    by_time = elapsed / max_seconds if max_seconds else 0.0
    return max(step / steps, by_time)
