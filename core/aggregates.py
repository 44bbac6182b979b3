"""Query helpers: JSON aggregation that builds a row's children inside the row's own query, and
a list of ids bound as one parameter.

``JSONObjectAgg(key, value)`` collects pairs into one JSON object: ``json_group_object`` on
SQLite, ``jsonb_object_agg`` on PostgreSQL. Used as a correlated subquery it replaces a
prefetch query (and Django's per-row prefetch bookkeeping) with one column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import Aggregate, JSONField, OuterRef, QuerySet, Subquery
from django.db.models.expressions import RawSQL


class JSONObjectAgg(Aggregate):
    function = "JSON_GROUP_OBJECT"
    output_field = JSONField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return super().as_sql(compiler, connection, function="JSONB_OBJECT_AGG", **extra)


class JSONArrayAgg(Aggregate):
    function = "JSON_GROUP_ARRAY"
    output_field = JSONField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return super().as_sql(compiler, connection, function="JSONB_AGG", **extra)


def _per_outer_row(queryset: QuerySet[Any], parent: str, aggregate: Aggregate) -> Subquery:
    """`aggregate` over the `queryset` rows whose `parent` is the outer query's row."""
    rows = (
        queryset.filter(**{parent: OuterRef("pk")})
        .order_by()
        .values(parent)
        .annotate(_json=aggregate)
        .values("_json")
    )
    return Subquery(rows, output_field=JSONField())


def json_array_of(queryset: QuerySet[Any], *, parent: str, value: Any) -> Subquery:
    """A subquery yielding a JSON array of `value` over rows whose `parent` is the outer row.
    The order of elements is unspecified; callers sort."""
    return _per_outer_row(queryset, parent, JSONArrayAgg(value))


def json_object_of(queryset: QuerySet[Any], *, parent: str, key: str, value: str) -> Subquery:
    """A subquery yielding {key: value} over `queryset` rows whose `parent` is the outer row."""
    return _per_outer_row(queryset, parent, JSONObjectAgg(key, value))


def id_subquery(ids: Iterable[int]) -> RawSQL:
    """`ids` as a subquery for `__in` filters, bound as one parameter however many there are:
    thousands of ids as thousands of parameters cost more to bind (and for psycopg to split out
    of the statement) than the query costs to run, and SQLite caps a statement's parameters."""
    ids = [int(pk) for pk in ids]
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", (ids,))
    return RawSQL("SELECT value FROM json_each(%s)", (json.dumps(ids),))
