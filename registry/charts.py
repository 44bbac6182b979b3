"""Scales for the dashboard's server-drawn charts."""

from __future__ import annotations


def chart_axis(values: list[float]) -> tuple[float, float]:
    """Where a metric's bars start and end. Values that differ get an axis around them (a
    quarter of their spread below the lowest, a tenth above the highest; never below zero
    for values that are not), so 0.74 against 0.78 shows; equal values keep zero to them."""
    low, high = min(values), max(values)
    if low == high:
        return (min(low, 0.0), max(high, 0.0) or 1.0)
    spread = high - low
    start = low - spread / 4
    if low >= 0:
        start = max(start, 0.0)
    return (start, high + spread / 10)
