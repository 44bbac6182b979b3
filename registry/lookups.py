"""SQL LIKE with the same meaning on every database, evaluated natively.

``mg_like`` is case-sensitive: PostgreSQL's LIKE, SQLite's GLOB (SQLite's own LIKE ignores
case). ``mg_ilike`` ignores case: PostgreSQL's ILIKE, SQLite's LIKE (ASCII case folding only).
Patterns use ``%`` for any run and ``_`` for one character; everything else is literal.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Lookup


def _escape_backslash(pattern: str) -> str:
    return pattern.replace("\\", "\\\\")


def _like_to_glob(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


class _PatternLookup(Lookup):
    def _sides(self, compiler: Any, connection: Any) -> tuple[str, str, list[Any], str]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        pattern = list(rhs_params)[0]
        assert isinstance(pattern, str)  # a CharField's lookup value is prepared as a str
        return lhs, rhs, list(lhs_params), pattern


class Like(_PatternLookup):
    lookup_name = "mg_like"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, rhs, params, pattern = self._sides(compiler, connection)
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB {rhs}", [*params, _like_to_glob(pattern)]
        return f"{lhs} LIKE {rhs}", [*params, _escape_backslash(pattern)]


class ILike(_PatternLookup):
    lookup_name = "mg_ilike"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, rhs, params, pattern = self._sides(compiler, connection)
        if connection.vendor == "sqlite":
            return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*params, _escape_backslash(pattern)]
        return f"{lhs} ILIKE {rhs}", [*params, _escape_backslash(pattern)]


def register() -> None:
    CharField.register_lookup(Like)
    CharField.register_lookup(ILike)
