"""Querysets compiled to SQL once per process and run with new values each time.

Django compiles a queryset to SQL every time it is evaluated. For the reads every API request
makes (a token by its digest, a model by its name, a version by its number) compiling took
more Python time than the rest of the request (about 45% of a `get model`). A `CompiledQuery`
builds its queryset once per shape with placeholder values, compiles it, records where each
placeholder landed among the SQL's parameters, and then runs that SQL with the real values,
turning rows into objects exactly as Django does (select_related, annotations).

The rules that keep it honest:
- A *shape* is whatever changes the SQL's text (which branch the permission gate takes, say).
  The caller computes it with the same function that decides the branch, and the compiled
  SQL is kept per shape and per database.
- Values may only be strings and integers, and each must reach the SQL as one parameter,
  unchanged. Compiling refuses a placeholder that vanished, was transformed (a LIKE pattern
  around it) or equals another parameter: such a query cannot be reused, and would silently
  run with the wrong values if it were.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)
Value = str | int

# Placeholders nobody writes: strings with NUL bytes (the edge refuses NUL in requests, and
# PostgreSQL cannot store one), integers high in the 32-bit range (so every integer column
# accepts them in a lookup); the compile step checks no other parameter equals one.
_serial = itertools.count(1)
_INT_BASE = 2_146_000_000
# Bound as compiled only within the 32-bit range every integer column accepts.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _placeholder(name: str, value: Value) -> Value:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{name}: a compiled query binds strings and integers only.")
    n = next(_serial)
    return f"\x00placeholder:{name}:{n}\x00" if isinstance(value, str) else _INT_BASE + n


@dataclass(frozen=True)
class _Compiled:
    queryset: QuerySet[Any]
    compiler: SQLCompiler
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str, type], ...]  # (parameter index, value name, its type)


class CompiledQuery(Generic[M]):
    """`build(shape, **values)` returns the queryset (ordered and sliced as it will run);
    `rows(shape, **values)` runs it."""

    def __init__(self, build: Callable[..., QuerySet[M]]) -> None:
        self._build = build
        self._compiled: dict[tuple[str, Hashable, tuple[str, ...]], _Compiled] = {}

    def _compile_once(self, alias: str, shape: Hashable, values: dict[str, Value]) -> _Compiled:
        marks = {name: _placeholder(name, value) for name, value in values.items()}
        queryset = self._build(shape, **marks)
        if queryset.db != alias:  # a router sends it elsewhere: never run it on the wrong one
            raise ImproperlyConfigured(f"Compiled queries run on '{alias}', not '{queryset.db}'.")
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        by_mark = {(type(mark), mark): name for name, mark in marks.items()}
        slots = []
        for index, param in enumerate(params):
            # An integer may come wrapped (psycopg's Int4 when PostgreSQL binds on the
            # server); the value bound later is wrapped the same way.
            kind = int if isinstance(param, int) and not isinstance(param, bool) else type(param)
            name = by_mark.get((kind, param))
            if name is not None:
                slots.append((index, name, type(param)))
            elif isinstance(param, str) and any(
                isinstance(m, str) and m in param for m in marks.values()
            ):
                raise ImproperlyConfigured(f"A placeholder was transformed in {sql[:200]}.")
        missing = set(marks) - {name for _, name, _ in slots}
        if missing:
            raise ImproperlyConfigured(
                f"{', '.join(sorted(missing))} did not reach the SQL as parameters: {sql[:200]}."
            )
        return _Compiled(queryset, compiler, sql, tuple(params), tuple(slots))

    def _compile(self, alias: str, shape: Hashable, values: dict[str, Value]) -> _Compiled:
        """Compiled twice with different placeholders: the text, the placeholders' places and
        every other parameter must agree, so no value is written into the SQL, hidden inside
        another parameter (a JSON document, a pattern) or merely equal to a placeholder, and
        the build depends on nothing else that changes (the time)."""
        first = self._compile_once(alias, shape, values)
        second = self._compile_once(alias, shape, values)
        slots = {index for index, _, _ in first.slots}
        others = [
            (a, b)
            for index, (a, b) in enumerate(zip(first.params, second.params, strict=True))
            if index not in slots
        ]
        if (
            first.sql != second.sql
            or first.slots != second.slots
            or any(type(a) is not type(b) or a != b for a, b in others)
        ):
            raise ImproperlyConfigured(f"The SQL depends on the values: {first.sql[:200]}.")
        return first

    def rows(self, shape: Hashable = (), **values: Value) -> list[M]:
        if any(isinstance(v, int) and not _INT_MIN <= v <= _INT_MAX for v in values.values()):
            # Beyond every integer column's range (a version number of 40 digits): Django's own
            # lookups know a column cannot hold it and answer without binding it.
            return list(self._build(shape, **values))
        alias = "default"
        key = (alias, shape, tuple(sorted(values)))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled.setdefault(key, self._compile(alias, shape, values))
        params = list(compiled.params)
        for index, name, kind in compiled.slots:
            value = values[name]
            # Bound as compiled: a string where a string was, an integer where an integer was.
            if isinstance(value, bool) or isinstance(value, str) != issubclass(kind, str):
                raise TypeError(f"{name}: {type(value).__name__} where {kind.__name__} was.")
            params[index] = kind(value)
        bound = tuple(params)
        connection = connections[alias]
        if (
            compiled.queryset.query.select_for_update
            and connection.features.has_select_for_update
            and connection.get_autocommit()
        ):  # as Django refuses it: a row lock outside a transaction would hold nothing
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        compiler = copy.copy(compiled.compiler)
        compiler.connection = connection  # this thread's connection
        compiler.as_sql = lambda *args, **kwargs: (compiled.sql, bound)  # type: ignore[method-assign]
        queryset = compiled.queryset._chain()  # type: ignore[attr-defined]
        queryset.query.get_compiler = lambda *args, **kwargs: compiler
        return list(queryset)

    def first(self, shape: Hashable = (), **values: Value) -> M | None:
        found = self.rows(shape, **values)
        return found[0] if found else None
