"""Validation of the JSON a client sends: names, tags, params, metrics, signatures, rows.

Every function raises ``ValidationFailed`` with the offending field, or returns a normalised
value. Services call these before they write; the ``validate`` endpoint reuses the row checks.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import ValidationFailed
from registry import metric_direction

MAX_NAME = 256
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 100_000  # MLflow's limit, so its clients' tags fit
MAX_TAGS = 100
MAX_PARAMS = 1000
MAX_PARAM_VALUE = 6000
MAX_METRICS = 1000
MAX_DESCRIPTION = 65536
MAX_JSON_BYTES = 1024 * 1024
ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
RESERVED_ALIAS_RE = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)

COLUMN_TYPES = ("boolean", "integer", "long", "float", "double", "string", "binary", "datetime")
TENSOR_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "str",
    "object",
)


def has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value)


def name(value: object, *, field: str = "name", what: str = "Name") -> str:
    """A registered model (or catalogue) name: 1–256 characters, no '/', no control characters,
    no leading or trailing white space."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{what} must be a string.", field=field, code="invalid_name")
    if not 1 <= len(value) <= MAX_NAME:
        raise ValidationFailed(
            f"{what} must be 1–{MAX_NAME} characters.", field=field, code="invalid_name"
        )
    if "/" in value:
        raise ValidationFailed(f"{what} may not contain '/'.", field=field, code="invalid_name")
    if has_control_chars(value):
        raise ValidationFailed(
            f"{what} may not contain control characters.", field=field, code="invalid_name"
        )
    if value != value.strip():
        raise ValidationFailed(
            f"{what} may not start or end with white space.", field=field, code="invalid_name"
        )
    return value


def alias_name(value: object, *, field: str = "alias") -> str:
    # fullmatch: `$` would also match before a trailing newline ("champion\n").
    if not isinstance(value, str) or not ALIAS_RE.fullmatch(value):
        raise ValidationFailed(
            "Alias names use 1–255 letters, digits, '_' or '-'.",
            field=field,
            code="invalid_alias",
        )
    if RESERVED_ALIAS_RE.fullmatch(value):
        raise ValidationFailed(
            f"'{value}' is reserved; choose another alias name.",
            field=field,
            code="invalid_alias",
        )
    return value


def text(value: object, *, field: str, max_length: int = MAX_DESCRIPTION) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("Must be a string.", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"At most {max_length} characters.", field=field)
    return value


_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def environment_name(value: object, *, field: str = "environment") -> str:
    """A deployment environment: 1–64 ASCII letters, digits, '.', '_' or '-', starting with a
    letter or digit. Strict on purpose: production environments are matched by name, so
    "prod" must not have look-alikes (blanks, invisible or non-Latin characters)."""
    if not isinstance(value, str) or not _ENVIRONMENT.fullmatch(value):
        raise ValidationFailed(
            "An environment name is 1–64 ASCII letters, digits, '.', '_' or "
            "'-', starting with a letter or digit.",
            field=field,
            code="invalid_environment",
        )
    return value


def tag_key(key: object, *, field: str = "tags") -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY or has_control_chars(key):
        raise ValidationFailed(
            f"Tag keys are 1–{MAX_TAG_KEY} characters without control characters.", field=field
        )
    return key


def tag_value(value: object, *, field: str = "tags") -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationFailed("Tag values must be strings.", field=field)
    value = str(value)
    if len(value) > MAX_TAG_VALUE:
        raise ValidationFailed(f"Tag values are at most {MAX_TAG_VALUE} characters.", field=field)
    return value


def tags(value: object, *, field: str = "tags") -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValidationFailed("Tags must be an object of key → value.", field=field)
    if len(value) > MAX_TAGS:
        raise ValidationFailed(f"At most {MAX_TAGS} tags.", field=field)
    return {tag_key(k, field=field): tag_value(v, field=field) for k, v in value.items()}


def params(value: object) -> dict[str, str | int | float | bool | None]:
    if not isinstance(value, dict):
        raise ValidationFailed("Params must be an object of key → value.", field="params")
    if len(value) > MAX_PARAMS:
        raise ValidationFailed(f"At most {MAX_PARAMS} params.", field="params")
    out: dict[str, str | int | float | bool | None] = {}
    for k, v in value.items():
        tag_key(k, field="params")
        if v is not None and not isinstance(v, str | int | float | bool):
            raise ValidationFailed(
                f"Param '{k}' must be a string, number, boolean or null.", field="params"
            )
        if isinstance(v, float) and not math.isfinite(v):
            raise ValidationFailed(f"Param '{k}' must be finite.", field="params")
        if isinstance(v, str) and len(v) > MAX_PARAM_VALUE:
            raise ValidationFailed(
                f"Param '{k}' is longer than {MAX_PARAM_VALUE} characters.", field="params"
            )
        out[k] = v
    return out


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    dataset: str = ""
    split: str = ""


def _number(value: object, *, field: str, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"{label} must be a number.", field=field)
    number = float(value)
    if not math.isfinite(number):
        raise ValidationFailed(f"{label} must be finite.", field=field)
    return number


def metrics(value: object) -> list[MetricValue]:
    """``{"auc": 0.91}`` or ``[{"name": "auc", "value": 0.91, "dataset": "holdout",
    "split": "test"}]``."""
    if isinstance(value, dict):
        items: list[Any] = [{"name": k, "value": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = value
    else:
        raise ValidationFailed(
            "Metrics must be an object of name → number or a list of "
            "{name, value, dataset, split}.",
            field="metrics",
        )
    if len(items) > MAX_METRICS:
        raise ValidationFailed(f"At most {MAX_METRICS} metrics.", field="metrics")
    seen: set[tuple[str, str, str]] = set()
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"name", "value", "dataset", "split"}:
            raise ValidationFailed(
                "Each metric is {name, value, dataset?, split?}.", field="metrics"
            )
        metric = MetricValue(
            name=tag_key(item.get("name"), field="metrics"),
            value=_number(item.get("value"), field="metrics", label=f"Metric {item.get('name')}"),
            dataset=_short(item.get("dataset", ""), 250, "metrics"),
            split=_short(item.get("split", ""), 64, "metrics"),
        )
        ident = (metric.name, metric.dataset, metric.split)
        if ident in seen:
            raise ValidationFailed(
                f"Metric '{metric.name}' is given twice for the same dataset and split.",
                field="metrics",
            )
        seen.add(ident)
        out.append(metric)
    return out


MAX_METRIC_DIRECTIONS = 200


def metric_directions(value: object) -> dict[str, str]:
    """A model's declared metric directions: {metric name: "higher" | "lower"}."""
    field = "metric_directions"
    if not isinstance(value, dict):
        raise ValidationFailed(
            'metric_directions must be an object of metric name to "higher" or "lower".',
            field=field,
        )
    if len(value) > MAX_METRIC_DIRECTIONS:
        raise ValidationFailed(f"At most {MAX_METRIC_DIRECTIONS} metric directions.", field=field)
    clean = {}
    for name, way in value.items():
        name = tag_key(name, field=field)
        if way not in metric_direction.DIRECTIONS:
            raise ValidationFailed(
                f'The direction of metric \'{name}\' must be "higher" or "lower".', field=field
            )
        clean[name] = way
    return dict(sorted(clean.items()))


MAX_EVALUATIONS = 50
MAX_MATRIX_LABELS = 100
MAX_CURVE_POINTS = 2000
MAX_SLICES = 500
CURVES = ("roc", "pr", "other")
# What one version may hold in all (pages draw all of it; exports carry it): results, and
# matrix cells, curve points and slices over all its results.
VERSION_EVALUATIONS = 100
VERSION_BUDGET = {"matrix cells": 40_000, "curve points": 40_000, "slices": 2_000}


def evaluation_size(kind: str, data: dict[str, Any]) -> tuple[str, int]:
    """What one result counts against VERSION_BUDGET."""
    if kind == "confusion_matrix":
        return ("matrix cells", len(data["labels"]) ** 2)
    if kind == "curve":
        return ("curve points", len(data["points"]))
    return ("slices", len(data["slices"]))


def evaluations_within_budget(held: list[tuple[str, dict[str, Any]]]) -> None:
    """Refuse when a version's results, as they would be after the change ((kind, data) of
    each), pass VERSION_EVALUATIONS or VERSION_BUDGET."""
    field = "evaluations"
    if len(held) > VERSION_EVALUATIONS:
        raise ValidationFailed(
            f"A version holds at most {VERSION_EVALUATIONS} evaluations; this would make "
            f"{len(held)}.",
            field=field,
        )
    totals = dict.fromkeys(VERSION_BUDGET, 0)
    for kind, data in held:
        what, size = evaluation_size(kind, data)
        totals[what] += size
    for what, total in totals.items():
        if total > VERSION_BUDGET[what]:
            raise ValidationFailed(
                f"A version's evaluations hold at most {VERSION_BUDGET[what]:,} {what} in all; "
                f"this would make {total:,}.",
                field=field,
            )


@dataclass(frozen=True)
class EvaluationValue:
    name: str
    kind: str
    data: dict[str, Any]
    dataset: str = ""
    split: str = ""


def evaluations(value: object) -> list[EvaluationValue]:
    """Structured evaluation results, each ``{name, kind, data, dataset?, split?}``:

    - ``confusion_matrix``: ``{"labels": [...], "matrix": [[...], ...]}``, a square matrix of
      counts (whole numbers from 0), one row and one column per label (actual x predicted);
    - ``curve``: ``{"curve": "roc" | "pr" | "other", "points": [{"x", "y", "threshold"?}],
      "x_label"?, "y_label"?}``, ROC and precision-recall points within 0..1;
    - ``slices``: ``{"metric": name, "slices": [{"slice", "value", "count"?}]}``.
    """
    field = "evaluations"
    if not isinstance(value, list):
        raise ValidationFailed("Evaluations must be a list of {name, kind, data}.", field=field)
    if len(value) > MAX_EVALUATIONS:
        raise ValidationFailed(f"At most {MAX_EVALUATIONS} evaluations at once.", field=field)
    seen: set[tuple[str, str, str]] = set()
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "kind", "data", "dataset", "split"}:
            raise ValidationFailed(
                "Each evaluation is {name, kind, data, dataset?, split?}.", field=field
            )
        name = tag_key(item.get("name"), field=field)
        kind = item.get("kind")
        check = _EVALUATION_KINDS.get(kind) if isinstance(kind, str) else None
        if check is None or not isinstance(kind, str):
            raise ValidationFailed(
                f"Evaluation '{name}': kind must be one of {', '.join(_EVALUATION_KINDS)}.",
                field=field,
            )
        data = item.get("data")
        if not isinstance(data, dict):
            raise ValidationFailed(f"Evaluation '{name}': data must be an object.", field=field)
        bounded_json(data, field=field)
        ident = (
            name,
            _short(item.get("dataset", ""), 250, field),
            _short(item.get("split", ""), 64, field),
        )
        if ident in seen:
            raise ValidationFailed(
                f"Evaluation '{name}' is given twice for the same dataset and split.", field=field
            )
        seen.add(ident)
        out.append(EvaluationValue(name, kind, check(name, data), ident[1], ident[2]))
    return out


def _refuse(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"Evaluation '{name}': {message}", field="evaluations")


def _keys(name: str, data: dict[str, Any], required: set[str], optional: set[str]) -> None:
    missing, unknown = required - set(data), set(data) - required - optional
    if missing or unknown:
        raise _refuse(
            name,
            f"data needs {', '.join(sorted(required))}"
            + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
            + f"; got {', '.join(sorted(data)) or 'nothing'}.",
        )


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _confusion_matrix(name: str, data: dict[str, Any]) -> dict[str, Any]:
    _keys(name, data, {"labels", "matrix"}, set())
    labels, matrix = data["labels"], data["matrix"]
    if (
        not isinstance(labels, list)
        or not 2 <= len(labels) <= MAX_MATRIX_LABELS
        or not all(isinstance(x, str) and 0 < len(x) <= 250 for x in labels)
        or len(set(labels)) != len(labels)
    ):
        raise _refuse(name, f"labels must be 2-{MAX_MATRIX_LABELS} distinct names.")
    size = len(labels)
    if (
        not isinstance(matrix, list)
        or len(matrix) != size
        or not all(isinstance(row, list) and len(row) == size for row in matrix)
    ):
        raise _refuse(name, f"matrix must be {size} rows of {size} counts, one per label.")
    if not all(_count(cell) for row in matrix for cell in row):
        raise _refuse(name, "matrix cells must be whole numbers from 0.")
    return {"labels": labels, "matrix": matrix}


def _curve(name: str, data: dict[str, Any]) -> dict[str, Any]:
    _keys(name, data, {"curve", "points"}, {"x_label", "y_label"})
    curve, points = data["curve"], data["points"]
    if curve not in CURVES:
        raise _refuse(name, f"curve must be one of {', '.join(CURVES)}.")
    if not isinstance(points, list) or not 2 <= len(points) <= MAX_CURVE_POINTS:
        raise _refuse(name, f"points must be a list of 2-{MAX_CURVE_POINTS} points.")
    clean = []
    for point in points:
        if not isinstance(point, dict) or not {"x", "y"} <= set(point) <= {"x", "y", "threshold"}:
            raise _refuse(name, "each point is {x, y, threshold?}.")
        x = _number(point["x"], field="evaluations", label=f"Evaluation '{name}': x")
        y = _number(point["y"], field="evaluations", label=f"Evaluation '{name}': y")
        if curve != "other" and not (0 <= x <= 1 and 0 <= y <= 1):
            raise _refuse(name, f"{curve} points lie within 0..1.")
        row = {"x": x, "y": y}
        if "threshold" in point:
            row["threshold"] = _number(
                point["threshold"], field="evaluations", label=f"Evaluation '{name}': threshold"
            )
        clean.append(row)
    labels = {k: _short(data.get(k, ""), 100, "evaluations") for k in ("x_label", "y_label")}
    return {"curve": curve, "points": clean, **{k: v for k, v in labels.items() if v}}


def _slices(name: str, data: dict[str, Any]) -> dict[str, Any]:
    _keys(name, data, {"metric", "slices"}, set())
    metric, slices = tag_key(data["metric"], field="evaluations"), data["slices"]
    if not isinstance(slices, list) or not 1 <= len(slices) <= MAX_SLICES:
        raise _refuse(name, f"slices must be a list of 1-{MAX_SLICES} slices.")
    clean, names = [], set()
    for part in slices:
        if not isinstance(part, dict) or not {"slice", "value"} <= set(part) <= {
            "slice",
            "value",
            "count",
        }:
            raise _refuse(name, "each slice is {slice, value, count?}.")
        label = _short(part["slice"], 250, "evaluations")
        if not label or label in names:
            raise _refuse(name, "slice names must be distinct and not empty.")
        names.add(label)
        row: dict[str, Any] = {
            "slice": label,
            "value": _number(part["value"], field="evaluations", label=f"Slice '{label}'"),
        }
        if "count" in part:
            if not _count(part["count"]):
                raise _refuse(name, f"slice '{label}': count must be a whole number from 0.")
            row["count"] = part["count"]
        clean.append(row)
    return {"metric": metric, "slices": clean}


_EVALUATION_KINDS = {
    "confusion_matrix": _confusion_matrix,
    "curve": _curve,
    "slices": _slices,
}


def _short(value: object, limit: int, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or has_control_chars(value):
        raise ValidationFailed(f"Must be a string of at most {limit} characters.", field=field)
    return value


def bounded_json(value: object, *, field: str) -> object:
    if len(json.dumps(value)) > MAX_JSON_BYTES:
        raise ValidationFailed(f"At most {MAX_JSON_BYTES // 1024} KiB of JSON.", field=field)
    return value


def requirements(value: object) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(r, str) and 0 < len(r) <= 500 for r in value
    ):
        raise ValidationFailed(
            "pip_requirements must be a list of requirement strings.", field="pip_requirements"
        )
    if len(value) > 500:
        raise ValidationFailed("At most 500 requirements.", field="pip_requirements")
    return value


# --- Signatures -----------------------------------------------------------------------------


def _schema(value: object, *, part: str) -> list[dict[str, Any]]:
    field = "signature"
    if not isinstance(value, list) or not value:
        raise ValidationFailed(f"signature.{part} must be a non-empty list.", field=field)
    kinds = {
        "tensor" if isinstance(s, dict) and s.get("type") == "tensor" else "column" for s in value
    }
    if len(kinds) > 1:
        raise ValidationFailed(f"signature.{part} mixes columns and tensors.", field=field)
    names: set[str] = set()
    out = []
    for i, spec in enumerate(value):
        where = f"signature.{part}[{i}]"
        if not isinstance(spec, dict):
            raise ValidationFailed(f"{where} must be an object.", field=field)
        if spec.get("type") == "tensor":
            ts = spec.get("tensor-spec")
            if (
                not isinstance(ts, dict)
                or ts.get("dtype") not in TENSOR_DTYPES
                or not isinstance(ts.get("shape"), list)
                or not all(
                    isinstance(d, int) and not isinstance(d, bool) and (d == -1 or d > 0)
                    for d in ts["shape"]
                )
            ):
                raise ValidationFailed(
                    f"{where} needs tensor-spec {{dtype: one of {', '.join(TENSOR_DTYPES)}; "
                    "shape: list of positive integers or -1}}.",
                    field=field,
                )
            clean: dict[str, Any] = {
                "type": "tensor",
                "tensor-spec": {"dtype": ts["dtype"], "shape": ts["shape"]},
            }
            if spec.get("name") is not None:
                clean["name"] = _short(spec["name"], 256, field)
        else:
            col = spec.get("name")
            if not isinstance(col, str) or not col or len(col) > 256:
                raise ValidationFailed(f"{where} needs a column name.", field=field)
            if spec.get("type") not in COLUMN_TYPES:
                raise ValidationFailed(
                    f"{where}.type must be one of {', '.join(COLUMN_TYPES)}.", field=field
                )
            if col in names:
                raise ValidationFailed(
                    f"Column '{col}' appears twice in signature.{part}.", field=field
                )
            names.add(col)
            clean = {
                "name": col,
                "type": spec["type"],
                "required": bool(spec.get("required", True)),
            }
        out.append(clean)
    return out


def signature(value: object) -> dict[str, Any] | None:
    """``{"inputs": [...], "outputs": [...]}`` with MLflow's column or tensor specs."""
    if value is None:
        return None
    if not isinstance(value, dict) or "inputs" not in value or set(value) - {"inputs", "outputs"}:
        raise ValidationFailed(
            "Signature must be an object with 'inputs' and optional 'outputs'.", field="signature"
        )
    out = {"inputs": _schema(value["inputs"], part="inputs")}
    if value.get("outputs") is not None:
        out["outputs"] = _schema(value["outputs"], part="outputs")
    return out


def is_tensor_schema(schema: list[dict[str, Any]]) -> bool:
    return bool(schema) and schema[0].get("type") == "tensor"


# --- Rows against a signature ---------------------------------------------------------------

MAX_ROWS = 10_000
MAX_ERRORS = 100


def _type_ok(value: object, col_type: str) -> bool:
    if col_type == "boolean":
        return isinstance(value, bool)
    if col_type in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return col_type == "long" or -(2**31) <= value < 2**31
    if col_type in ("float", "double"):
        return not isinstance(value, bool) and isinstance(value, int | float)
    if col_type in ("string", "binary"):
        return isinstance(value, str)
    if col_type == "datetime":
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _dtype_ok(value: object, dtype: str) -> bool:
    if dtype == "bool":
        return isinstance(value, bool)
    if dtype.startswith(("int", "uint")):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (not dtype.startswith("uint") or value >= 0)
        )
    if dtype.startswith("float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if dtype == "str":
        return isinstance(value, str)
    return True


class _Errors(list):
    def add(self, code: str, message: str, **where: object) -> None:
        if len(self) < MAX_ERRORS:
            self.append({"code": code, "message": message, **where})


def rows_from_payload(payload: object, tensor: bool) -> list[Any]:
    """Accept MLflow serving shapes: dataframe_records / dataframe_split / rows for columns,
    instances / inputs for tensors."""
    if not isinstance(payload, dict):
        raise ValidationFailed("Body must be a JSON object.", code="invalid_payload")
    keys = [
        k
        for k in ("rows", "dataframe_records", "dataframe_split", "instances", "inputs")
        if k in payload
    ]
    if len(keys) != 1:
        raise ValidationFailed(
            "Give exactly one of rows, dataframe_records, dataframe_split, instances or inputs.",
            code="invalid_payload",
        )
    key = keys[0]
    data = payload[key]
    if key == "dataframe_split":
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("columns"), list)
            or not isinstance(data.get("data"), list)
            or not all(isinstance(r, list) for r in data["data"])
        ):
            raise ValidationFailed(
                "dataframe_split is {columns: [...], data: [[...]]}.",
                field=key,
                code="invalid_payload",
            )
        columns = data["columns"]
        rows: list[Any] = []
        for r in data["data"]:
            if len(r) != len(columns):
                raise ValidationFailed(
                    "Every data row needs one value per column.", field=key, code="invalid_payload"
                )
            rows.append(dict(zip(columns, r, strict=True)))
    else:
        rows = data
    if not isinstance(rows, list):
        raise ValidationFailed(f"{key} must be a list.", field=key, code="invalid_payload")
    if len(rows) > MAX_ROWS:
        raise ValidationFailed(
            f"At most {MAX_ROWS} rows per request.", field=key, code="invalid_payload"
        )
    return rows


def _shape_of(value: object, shape: list[int], path: str, errors: _Errors, row: int) -> None:
    if not shape:
        return
    dim, rest = shape[0], shape[1:]
    if not isinstance(value, list):
        errors.add("wrong_shape", f"Expected a list at {path or 'the row'}.", row=row)
        return
    if dim != -1 and len(value) != dim:
        errors.add(
            "wrong_shape",
            f"Expected {dim} elements at {path or 'the row'}, got {len(value)}.",
            row=row,
        )
        return
    for i, item in enumerate(value):
        _shape_of(item, rest, f"{path}[{i}]", errors, row)


def _leaves(value: object) -> list[object]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def rows_check(schema: list[dict[str, Any]], rows: list[Any]) -> list[dict[str, Any]]:
    """Every schema error in the rows: missing or extra columns, wrong types, wrong shape."""
    errors = _Errors()
    if is_tensor_schema(schema):
        spec = schema[0]["tensor-spec"]
        inner = spec["shape"][1:]  # the first dimension is the batch
        for i, row in enumerate(rows):
            _shape_of(row, inner, "", errors, i)
            for leaf in _leaves(row):
                if not _dtype_ok(leaf, spec["dtype"]):
                    errors.add(
                        "wrong_type",
                        f"Expected {spec['dtype']} values, got {type(leaf).__name__}.",
                        row=i,
                    )
                    break
        return errors
    columns = {c["name"]: c for c in schema}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.add("wrong_shape", "Each row must be an object of column → value.", row=i)
            continue
        for col, spec in columns.items():
            if col not in row or row[col] is None:
                if spec.get("required", True):
                    errors.add("missing_column", f"Column '{col}' is required.", row=i, column=col)
            elif not _type_ok(row[col], spec["type"]):
                errors.add(
                    "wrong_type",
                    f"Column '{col}' expects {spec['type']}, got {type(row[col]).__name__}.",
                    row=i,
                    column=col,
                )
        for col in row:
            if col not in columns:
                errors.add(
                    "extra_column", f"Column '{col}' is not in the signature.", row=i, column=col
                )
    return errors
