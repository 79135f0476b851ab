"""The learning-rate schedule shared by network training and LUT fitting."""

from __future__ import annotations

import math


def cosine_lr(base: float, step: int, steps: int, floor: float, warmup: int = 0) -> float:
    """Learning rate at ``step`` of ``steps``: a cosine from ``base`` down to ``floor * base``.

    ``floor`` (a fraction of ``base``) keeps the last steps learning: a cosine to zero spends its
    tail at a rate too small to move the weights. ``warmup`` steps ramp the rate up linearly
    first (0: none), so Adam's early, noisy moment estimates cannot make large updates.
    """
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return base * warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / steps)))
