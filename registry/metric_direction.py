"""Which way a metric should move: higher is better (AUC, accuracy) or lower is better (loss,
latency, error). A model may declare the direction of any metric name
(`RegisteredModel.metric_directions`); otherwise a name made of common words takes its
default, and a name nobody declared and no word decides has no direction, so a change in it
is shown as a change, never as better or worse.

Defaults match whole words of the name (split on anything but letters and digits, without
case): `val_loss` and `p95_latency_ms` are lower-is-better, `roc_auc` higher-is-better;
`lossless_ratio` and `glossary` decide nothing. A name with words of both kinds (`auc_error`)
decides nothing either."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

HIGHER, LOWER = "higher", "lower"
DIRECTIONS = (HIGHER, LOWER)

_LOWER_WORDS = frozenset(
    {
        "loss",
        "error",
        "errors",
        "err",
        "latency",
        "rmse",
        "mse",
        "mae",
        "mape",
        "smape",
        "logloss",
        "perplexity",
        "brier",
        "wer",
        "cer",
        "fpr",
        "fnr",
        "duration",
        "cost",
        "ece",
    }
)
_HIGHER_WORDS = frozenset(
    {
        "auc",
        "roc",
        "accuracy",
        "acc",
        "precision",
        "recall",
        "f1",
        "fbeta",
        "r2",
        "map",
        "ndcg",
        "mrr",
        "bleu",
        "rouge",
        "meteor",
        "iou",
        "dice",
        "kappa",
        "tpr",
        "tnr",
        "specificity",
        "sensitivity",
        "throughput",
        "coverage",
        "gini",
    }
)
_WORD = re.compile(r"[^0-9a-z]+")


def default_direction(name: str) -> str | None:
    words = set(_WORD.split(name.casefold())) - {""}
    lower, higher = bool(words & _LOWER_WORDS), bool(words & _HIGHER_WORDS)
    if lower == higher:
        return None  # neither, or both: nothing decides
    return LOWER if lower else HIGHER


def direction(declared: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """(direction, where it comes from: "declared", "default" or "")."""
    if name in declared:
        return declared[name], "declared"
    found = default_direction(name)
    return found, "default" if found else ""


def described(declared: Mapping[str, str], name: str) -> dict[str, str | None]:
    """What pages and the API say of a metric's direction: the direction in force, where it
    comes from, and the name's usual direction (a declaration against it is worth a look)."""
    way, source = direction(declared, name)
    return {
        "direction": way,
        "direction_source": source,
        "usual_direction": default_direction(name),
    }


def verdict(way: str | None, change: float | None) -> str | None:
    """ "better", "worse" or "same" for a change in a metric going `way`; None when the change
    or the direction is unknown."""
    if change is None:
        return None
    if change == 0:
        return "same"
    if way is None:
        return None
    return "better" if (change > 0) == (way == HIGHER) else "worse"


def difference(value: float, base: float) -> float:
    """`value - base` as the numbers are written (0.7651 - 0.75 is 0.0151, not
    0.015100000000000002): the exact decimal difference of their shortest representations."""
    return float(Decimal(repr(float(value))) - Decimal(repr(float(base))))


def percent(value: float, base: float) -> float | None:
    """The change as a percentage of |base|, to two decimals (None when base is zero)."""
    if base == 0:
        return None
    return round(difference(value, base) / abs(base) * 100, 2)


def changes(values: list[float | None], way: str | None) -> list[dict[str, Any]]:
    """Each value after the first against the first (the baseline): the difference as the
    numbers are written, the percentage and the verdict by the direction `way`; all None
    where either value is missing."""
    base = values[0]
    found: list[dict[str, Any]] = []
    for value in values[1:]:
        if base is None or value is None:
            found.append({"absolute": None, "percent": None, "verdict": None})
            continue
        absolute = difference(value, base)
        found.append(
            {
                "absolute": absolute,
                "percent": percent(value, base),
                "verdict": verdict(way, absolute),
            }
        )
    return found
