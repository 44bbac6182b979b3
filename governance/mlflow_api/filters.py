"""MLflow's search grammar for registered models and model versions, its orderings and its
page tokens, compiled to ORM filters. The text is parsed by the registry's own search parser
(registry.search: quoting, back-quoted keys, LIKE/ILIKE/IN); this module holds MLflow's rules
for what may be asked: AND only, its field names and its meaning of `!=` on tags."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from django.db.models import Exists, OuterRef, Q

from governance.mlflow_api.errors import invalid
from registry import search
from registry.models import ModelVersionTag, RegisteredModelTag

# The client adds `tag.`mlflow.prompt.is_prompt` != 'true'` to every model search; a model
# without the tag is not a prompt, so for this key (only) a missing tag matches `!=`.
PROMPT_TAG = "mlflow.prompt.is_prompt"

# field → (ORM path, numeric?, comparators allowed)
_TEXT = ("=", "!=", "like", "ilike")
MODEL_FIELDS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "name": ("name", False, (*_TEXT, "in")),
}
VERSION_FIELDS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "name": ("registered_model__name", False, (*_TEXT, "in")),
    "run_id": ("run_id", False, (*_TEXT, "in")),
    "source_path": ("source", False, _TEXT),
    "version_number": ("version", True, ("=", "!=", "<", "<=", ">", ">=")),
}
_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}

MODEL_ORDER = {
    "name": "name",
    "last_updated_timestamp": "updated_at",
    "timestamp": "updated_at",
    "creation_timestamp": "created_at",
}
VERSION_ORDER = {
    "name": "registered_model__name",
    "version_number": "version",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}


def _conditions(node: Any) -> list[search.Compare]:
    if isinstance(node, search.BoolOp):
        if node.op != "AND":
            raise invalid("Search filters join conditions with AND only; OR is not supported.")
        return [c for item in node.items for c in _conditions(item)]
    if isinstance(node, search.Compare):
        return [node]
    raise invalid("Search filters do not support NOT or parentheses; join conditions with AND.")


def _value_lookup(path: str, node: search.Compare, numeric: bool) -> Q:
    values = node.value if node.op == "in" else (node.value,)
    for v in values:
        if numeric and (isinstance(v, bool) or not isinstance(v, int)):
            raise invalid(f"'{node.field}' compares with whole numbers.")
        if not numeric and not isinstance(v, str):
            raise invalid(f"'{node.field}' compares with quoted strings.")
    if node.op == "in":
        q = Q(**{f"{path}__in": list(values)})
        return ~q if node.negate else q
    if node.op == "like":
        return Q(**{f"{path}__mg_like": node.value})
    if node.op == "ilike":
        return Q(**{f"{path}__mg_ilike": node.value})
    if node.op in _RANGE:
        return Q(**{f"{path}__{_RANGE[node.op]}": node.value})
    q = Q(**{path: node.value})
    return ~q if node.op == "!=" else q


def _tag(node: search.Compare, target: str) -> Q:
    if node.key is None:
        raise invalid("Name the tag: tag.<key> (back-quote keys with dots: tag.`a.b`).")
    if node.op not in (*_TEXT,) or node.negate:
        raise invalid(f"Tags compare with =, !=, LIKE or ILIKE, not {node.op.upper()}.")
    inner: Any = (
        RegisteredModelTag.objects.filter(registered_model=OuterRef("pk"), key=node.key)
        if target == "model"
        else ModelVersionTag.objects.filter(version=OuterRef("pk"), key=node.key)
    )
    if node.op == "!=":
        if node.key == PROMPT_TAG:
            return ~Q(Exists(inner.filter(value=node.value)))
        return Q(Exists(inner.exclude(value=node.value)))
    return Q(Exists(inner.filter(_value_lookup("value", node, numeric=False))))


def to_q(text: str, *, target: str) -> Q:
    """The filter of a search_registered_models (target "model") or search_model_versions."""
    if not text.strip():
        return Q()
    try:
        tree = search.parse(text)
    except search.SearchError as exc:
        raise invalid(f"Invalid filter '{text[:200]}': {exc.message}") from None
    fields = MODEL_FIELDS if target == "model" else VERSION_FIELDS
    q = Q()
    for node in _conditions(tree):
        if node.field in ("tag", "tags"):
            q &= _tag(node, target)
            continue
        if node.key is not None or node.field not in fields:
            allowed = ", ".join([*fields, "tag.<key>"])
            raise invalid(f"Invalid attribute key '{node.field}' in the filter; use {allowed}.")
        path, numeric, ops = fields[node.field]
        if node.op not in ops or (node.negate and node.op != "in"):
            raise invalid(f"Invalid comparator '{node.op.upper()}' for '{node.field}'.")
        q &= _value_lookup(path, node, numeric)
    return q


def only_name(text: str) -> str | None:
    """The name, when a version filter is exactly `name = '<name>'` (what
    `MlflowClient.search_model_versions(f"name='{name}'")` sends); else None."""
    try:
        tree = search.parse(text) if text.strip() else None
    except search.SearchError:
        return None
    if (
        isinstance(tree, search.Compare)
        and tree.field == "name"
        and tree.key is None
        and tree.op == "="
        and not tree.negate
        and isinstance(tree.value, str)
    ):
        return tree.value
    return None


def ordering(clauses: list[str], *, target: str) -> list[str]:
    """MLflow order_by clauses (`name`, `last_updated_timestamp DESC`, …) as ORM ordering,
    ties broken as MLflow does (name ascending; versions newest first)."""
    keys = MODEL_ORDER if target == "model" else VERSION_ORDER
    order: list[str] = []
    for clause in clauses:
        parts = clause.split()
        if not parts or len(parts) > 2 or parts[0].lower() not in keys:
            raise invalid(
                f"Invalid order_by clause '{clause[:100]}'; use one of {', '.join(keys)} "
                "with ASC or DESC."
            )
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise invalid(f"Invalid order_by direction '{parts[1][:20]}'; use ASC or DESC.")
        order.append(("-" if direction == "DESC" else "") + keys[parts[0].lower()])
    tiebreak = ["name"] if target == "model" else ["registered_model__name", "-version"]
    named = {o.lstrip("-") for o in order}
    return [*order, *(t for t in tiebreak if t.lstrip("-") not in named), "pk"]


# Past any page a database can hold (a column's 64-bit range is the hard limit).
MAX_OFFSET = 2**62


def page_offset(token: str) -> int:
    """The offset an opaque page token carries (base64 of {"offset": N}, as MLflow's)."""
    if not token:
        return 0
    try:
        data = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    offset = data.get("offset") if isinstance(data, dict) else None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise invalid(f"Invalid page token '{token[:100]}'.")
    return offset


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()
