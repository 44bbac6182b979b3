"""JSON aggregation that builds a row's children inside the row's own query.

``JSONObjectAgg(key, value)`` collects pairs into one JSON object: ``json_group_object`` on
SQLite, ``jsonb_object_agg`` on PostgreSQL. Used as a correlated subquery it replaces a
prefetch query (and Django's per-row prefetch bookkeeping) with one column.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Aggregate, JSONField, OuterRef, QuerySet, Subquery


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
