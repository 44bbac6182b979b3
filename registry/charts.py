"""Scales for the dashboard's server-drawn charts."""

from __future__ import annotations

import math


def chart_axis(values: list[float]) -> tuple[float, float]:
    """Where a metric's bars start and end. Values that differ get an axis around them (a
    quarter of their spread below the lowest, a tenth above the highest; never below zero
    for values that are not), so 0.74 against 0.78 shows; equal values keep zero to them.
    Spreads are taken by halves so the largest floats do not overflow to infinity."""
    low, high = min(values), max(values)
    if low == high:
        return (min(low, 0.0), max(high, 0.0) or 1.0)
    half = high / 2 - low / 2
    start = low - half / 2
    if low >= 0:
        start = max(start, 0.0)
    end = high + half / 5
    return (start if math.isfinite(start) else low, end if math.isfinite(end) else high)


def fraction(value: float, start: float, end: float) -> float:
    """Where `value` lies on the axis from `start` (0) to `end` (1), clamped; 0.5 on an axis
    of no length. Computed by halves, so values near the float limit do not overflow."""
    span = end / 2 - start / 2
    if not span > 0:
        return 0.5
    return min(1.0, max(0.0, (value / 2 - start / 2) / span))
