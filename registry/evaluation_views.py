"""How the version page draws structured evaluation results: a confusion matrix as a table
shaded by each row's share (classes, no inline style, so the CSP holds), a curve as an SVG
polyline on stated axes with the area under its points, a metric by slice as bars on the
slice values' own axis. Server-side; no script."""

from __future__ import annotations

import itertools
from typing import Any

from registry.charts import chart_axis
from registry.models import EvaluationResult

CURVE_SIZE = 220  # the plot's side in SVG units
SLICE_WIDTH = 260
_AXES = {"roc": ("false positive rate", "true positive rate"), "pr": ("recall", "precision")}


def shown(results: list[EvaluationResult]) -> list[dict[str, Any]]:
    return [{"result": r, **_DRAW[r.kind](r.data)} for r in results]


def _matrix(data: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for label, counts in zip(data["labels"], data["matrix"], strict=True):
        total = sum(counts) or 1
        rows.append(
            {
                "label": label,
                "cells": [
                    {"count": c, "shade": min(5, round(c / total * 5)), "share": c / total}
                    for c in counts
                ],
                "total": sum(counts),
            }
        )
    return {"labels": data["labels"], "rows": rows}


def _curve(data: dict[str, Any]) -> dict[str, Any]:
    points = sorted(data["points"], key=lambda p: (p["x"], p["y"]))
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    bounded = data["curve"] in _AXES
    x0, x1 = (0.0, 1.0) if bounded else (min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1)
    y0, y1 = (0.0, 1.0) if bounded else (min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1)
    size = CURVE_SIZE

    def at(x: float, y: float) -> str:
        return f"{(x - x0) / (x1 - x0) * size:.1f},{size - (y - y0) / (y1 - y0) * size:.1f}"

    area = sum((b["x"] - a["x"]) * (a["y"] + b["y"]) / 2 for a, b in itertools.pairwise(points))
    x_label, y_label = _AXES.get(data["curve"], ("x", "y"))
    return {
        "polyline": " ".join(at(p["x"], p["y"]) for p in points),
        "size": size,
        "x_axis": (x0, x1),
        "y_axis": (y0, y1),
        "x_label": data.get("x_label") or x_label,
        "y_label": data.get("y_label") or y_label,
        "area": area if bounded else None,
        "count": len(points),
    }


def _slices(data: dict[str, Any]) -> dict[str, Any]:
    values = [s["value"] for s in data["slices"]]
    start, end = chart_axis(values)
    return {
        "metric": data["metric"],
        "axis": (start, end),
        "slices": [
            {**s, "width": round(max((s["value"] - start) / (end - start) * SLICE_WIDTH, 1.0), 1)}
            for s in data["slices"]
        ],
    }


_DRAW = {"confusion_matrix": _matrix, "curve": _curve, "slices": _slices}
