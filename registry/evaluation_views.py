"""How the version page draws structured evaluation results: a confusion matrix as a table
shaded by each row's share (classes, no inline style, so the CSP holds), a curve as an SVG
polyline on stated axes with the area under its points, a metric by slice as bars on the
slice values' own axis. Server-side; no script."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from registry import metric_direction
from registry.charts import chart_axis, fraction
from registry.models import EvaluationResult, ModelVersion

CURVE_SIZE = 220  # the plot's side in SVG units
SLICE_WIDTH = 260
SERIES = 6  # colours for versions on one plot (static/css/app.css .line-N), then again
_AXES = {"roc": ("false positive rate", "true positive rate"), "pr": ("recall", "precision")}


DRAWN_LABELS = 20  # matrices larger than this are drawn on the version page only


def shown(results: list[EvaluationResult], *, full: bool = True) -> list[dict[str, Any]]:
    """Each result drawn; with `full` False (the card and compare pages, which show many),
    a confusion matrix of more than DRAWN_LABELS labels is named, not drawn."""
    return [
        {
            "result": r,
            **(
                _matrix(r.data, full=full)
                if r.kind == "confusion_matrix"
                else _DRAW[r.kind](r.data)
            ),
        }
        for r in results
    ]


def _matrix(data: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
    if not full and len(data["labels"]) > DRAWN_LABELS:
        return {"labels": data["labels"], "too_large": len(data["labels"])}
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


def area_under(points: list[dict[str, Any]]) -> float:
    """The area under the recorded points by the trapezoid rule (x ascending): for ROC and
    precision-recall curves, what the points say of AUC, not a recomputed figure."""
    ordered = sorted(points, key=lambda p: (p["x"], p["y"]))
    return float(
        sum((b["x"] - a["x"]) * (a["y"] + b["y"]) / 2 for a, b in itertools.pairwise(ordered))
    )


def _span(values: list[float]) -> tuple[float, float]:
    return (min(values), max(values))  # equal ends: fraction() puts the points midway


def _curves(datas: list[dict[str, Any] | None]) -> dict[str, Any]:
    """One or more curves of the same kind on one plot: ROC and precision-recall on 0..1,
    others on the span of all their points. Each curve's polyline is None where absent."""
    present = [d for d in datas if d is not None]
    kind = present[0]["curve"]
    bounded = kind in _AXES
    x0, x1 = (0.0, 1.0) if bounded else _span([p["x"] for d in present for p in d["points"]])
    y0, y1 = (0.0, 1.0) if bounded else _span([p["y"] for d in present for p in d["points"]])
    size = CURVE_SIZE

    def at(x: float, y: float) -> str:
        return f"{fraction(x, x0, x1) * size:.1f},{size - fraction(y, y0, y1) * size:.1f}"

    lines: list[dict[str, Any] | None] = []
    for data in datas:
        if data is None:
            lines.append(None)
            continue
        points = sorted(data["points"], key=lambda p: (p["x"], p["y"]))
        lines.append(
            {
                "polyline": " ".join(at(p["x"], p["y"]) for p in points),
                "area": area_under(points) if bounded else None,
                "count": len(points),
            }
        )
    x_label, y_label = _AXES.get(kind, ("x", "y"))
    return {
        "lines": lines,
        "size": size,
        "x_axis": (x0, x1),
        "y_axis": (y0, y1),
        "x_label": present[0].get("x_label") or x_label,
        "y_label": present[0].get("y_label") or y_label,
    }


def _curve(data: dict[str, Any]) -> dict[str, Any]:
    drawn = _curves([data])
    return {**drawn, **drawn["lines"][0]}


def _slices(data: dict[str, Any]) -> dict[str, Any]:
    values = [s["value"] for s in data["slices"]]
    start, end = chart_axis(values)
    return {
        "metric": data["metric"],
        "axis": (start, end),
        "slices": [
            {**s, "width": round(max(fraction(s["value"], start, end) * SLICE_WIDTH, 1.0), 1)}
            for s in data["slices"]
        ],
    }


_DRAW: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "curve": _curve,
    "slices": _slices,
}


def compared(
    versions: list[ModelVersion], results: list[EvaluationResult], declared: dict[str, str]
) -> list[dict[str, Any]]:
    """The evaluations of versions side by side, one group per kind, name, dataset and split
    and what it measures (_compared_as: ROC beside precision-recall, or two metrics by
    slice, are groups of their own):
    confusion matrices next to each other, curves on one plot, a metric by slice as one table
    with each version's value and its change against the first version by the metric's
    direction (`declared`: the model's metric_directions)."""
    index = {v.pk: i for i, v in enumerate(versions)}
    groups: dict[tuple[str, ...], list[EvaluationResult | None]] = {}
    for result in results:
        key = (result.name, result.dataset, result.split, *_compared_as(result))
        groups.setdefault(key, [None] * len(versions))[index[result.version_id]] = result
    shown_groups = []
    for (name, dataset, split, *_what), found in sorted(groups.items()):
        first = next(r for r in found if r is not None)
        group: dict[str, Any] = {
            "name": name,
            "dataset": dataset,
            "split": split,
            "kind": first.kind,
            "kind_label": first.get_kind_display(),
            "versions": versions,
        }
        if first.kind == "curve":
            group["curves"] = _curves([r.data if r else None for r in found])
            group["curves"]["lines"] = [
                {**(line or {}), "version": v.version, "series": i % SERIES}
                for i, (v, line) in enumerate(zip(versions, group["curves"]["lines"], strict=True))
            ]
        elif first.kind == "slices":
            group["slices"] = _slice_rows(found, declared)
        else:
            group["matrices"] = [
                {"version": v.version, **(_matrix(r.data, full=False) if r else {})}
                for v, r in zip(versions, found, strict=True)
            ]
        shown_groups.append(group)
    return shown_groups


def _compared_as(result: EvaluationResult) -> tuple[str, ...]:
    """What must be the same for two versions' results to be set side by side: the kind, and
    the curve's kind and axes, or the metric the slices measure (an auc by region beside a
    log_loss by region under the same name would be judged by the wrong direction)."""
    data = result.data
    if result.kind == "curve":
        return ("curve", data["curve"], data.get("x_label") or "", data.get("y_label") or "")
    if result.kind == "slices":
        return ("slices", data["metric"])
    return (result.kind,)


def _slice_rows(found: list[EvaluationResult | None], declared: dict[str, str]) -> dict[str, Any]:
    metric = next(r for r in found if r is not None).data["metric"]
    facts = metric_direction.described(declared, metric)
    by_version = [{s["slice"]: s["value"] for s in r.data["slices"]} if r else {} for r in found]
    names = list(dict.fromkeys(name for values in by_version for name in values))
    rows = []
    for name in names:
        values = [values.get(name) for values in by_version]
        rows.append(
            {
                "slice": name,
                "values": values,
                "changes": metric_direction.changes(values, facts["direction"]),
            }
        )
    return {"metric": metric, **facts, "rows": rows}
