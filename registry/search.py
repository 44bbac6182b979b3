"""The `q` search language, parsed into ORM filters.

    name LIKE 'credit%' AND (tags.team = 'risk' OR metrics.auc > 0.9) AND NOT stage = 'archived'

Grammar (keywords are case-insensitive)::

    expr       := or
    or         := and ("OR" and)*
    and        := unary ("AND" unary)*
    unary      := "NOT" unary | "(" expr ")" | comparison
    comparison := field op value
                | field ["NOT"] ("LIKE" | "ILIKE") string
                | field ["NOT"] "IN" "(" value ("," value)* ")"
    field      := identifier | ("tags" | "metrics") "." (identifier | `quoted key`)
    op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value      := 'string' | "string" | number

LIKE uses SQL wildcards (``%`` any run, ``_`` one character) and is case-sensitive on every
database; ILIKE ignores case. A syntax error names the character position where it happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from core.errors import ValidationFailed
from registry.models import (
    ModelVersion,
    ModelVersionMetric,
    ModelVersionTag,
    RegisteredModelTag,
)

MAX_LENGTH = 2000
MAX_DEPTH = 32


class SearchError(ValidationFailed):
    default_code = "invalid_search"

    def __init__(self, message: str, position: int) -> None:
        super().__init__(
            f"{message} (at position {position})", field="q", extra={"position": position}
        )
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, op, lparen, rparen, comma, dot, keyword, end
    value: Any
    pos: int


_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "ILIKE", "IN"}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<dot>\.)
""",
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"`":
            start, i = i, i + 1
            buf = []
            while True:
                if i >= len(text):
                    raise SearchError("Unterminated quoted text", start)
                if text[i] == "\\" and i + 1 < len(text):
                    buf.append(text[i + 1])
                    i += 2
                elif text[i] == ch:
                    if i + 1 < len(text) and text[i + 1] == ch:  # doubled quote
                        buf.append(ch)
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    buf.append(text[i])
                    i += 1
            tokens.append(Token("quoted" if ch == "`" else "string", "".join(buf), start))
            continue
        m = _TOKEN_RE.match(text, i)
        if not m:
            raise SearchError(f"Unexpected character {ch!r}", i)
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN_RE is a named group
        value: Any = m.group()
        if kind == "number":
            value = float(value) if any(c in value for c in ".eE") else int(value)
        elif kind == "ident" and value.upper() in _KEYWORDS:
            kind, value = "keyword", value.upper()
        if kind != "ws":
            tokens.append(Token(kind, value, i))
        i = m.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


# --- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    field: str  # "name", "tags", "metrics", ...
    key: str | None  # the tag or metric name
    op: str  # =, !=, <, <=, >, >=, like, ilike, in
    value: Any
    negate: bool
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND / OR
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self, kind: str, value: Any = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, what: str, value: Any = None) -> Token:
        tok = self.take(kind, value)
        if tok is None:
            found = "the end of the query" if self.tok.kind == "end" else repr(str(self.tok.value))
            raise SearchError(f"Expected {what} but found {found}", self.tok.pos)
        return tok

    def parse(self) -> Any:
        node = self.or_()
        if self.tok.kind != "end":
            raise SearchError(
                f"Unexpected {str(self.tok.value)!r}; expected AND, OR or the end", self.tok.pos
            )
        return node

    def or_(self) -> Any:
        items = [self.and_()]
        while self.take("keyword", "OR"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def and_(self) -> Any:
        items = [self.unary()]
        while self.take("keyword", "AND"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def unary(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SearchError("The query nests too deeply", self.tok.pos)
        try:
            if self.take("keyword", "NOT"):
                return Not(self.unary())
            if self.take("lparen"):
                node = self.or_()
                self.expect("rparen", "')'")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Compare:
        start = self.tok.pos
        ident = self.expect("ident", "a field name (name, tags.<key>, metrics.<name>, …)")
        field, key = ident.value.lower(), None
        if self.take("dot"):
            tok = self.take("ident") or self.take("quoted") or self.take("string")
            if tok is None:
                raise SearchError("Expected a key after '.'", self.tok.pos)
            key = tok.value
        negate = bool(self.take("keyword", "NOT"))
        like = self.take("keyword", "LIKE") or self.take("keyword", "ILIKE")
        if like is not None:
            value = self.expect("string", "a quoted pattern").value
            return Compare(field, key, like.value.lower(), value, negate, start)
        if self.take("keyword", "IN"):
            self.expect("lparen", "'(' after IN")
            values = [self.value()]
            while self.take("comma"):
                values.append(self.value())
            self.expect("rparen", "')' to close the IN list")
            return Compare(field, key, "in", tuple(values), negate, start)
        if negate:
            raise SearchError("Expected LIKE, ILIKE or IN after NOT", self.tok.pos)
        op_tok = self.expect("op", "a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN)")
        op = "!=" if op_tok.value == "<>" else op_tok.value
        return Compare(field, key, op, self.value(), False, start)

    def value(self) -> Any:
        tok = self.take("string") or self.take("number")
        if tok is None:
            raise SearchError("Expected a quoted string or a number", self.tok.pos)
        return tok.value


def parse(text: str) -> Any:
    if len(text) > MAX_LENGTH:
        raise SearchError(f"The query is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    if not text.strip():
        raise SearchError("The query is empty", 0)
    return _Parser(text).parse()


# --- Compilation to Q -----------------------------------------------------------------------

_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _lookup(path: str, node: Compare, *, numeric: bool) -> Q:
    op, value = node.op, node.value
    if numeric and op in ("like", "ilike"):
        raise SearchError(f"LIKE does not apply to '{_label(node)}'", node.pos)
    values = value if op == "in" else (value,)
    for v in values:
        if numeric and isinstance(v, str | bool):
            raise SearchError(f"'{_label(node)}' compares with numbers, not text", node.pos)
        if not numeric and not isinstance(v, str) and op in ("like", "ilike"):
            raise SearchError("LIKE needs a quoted pattern", node.pos)
    if not numeric:
        values = tuple(str(v) for v in values)
    if op == "like":
        q = Q(**{f"{path}__mg_like": value})
    elif op == "ilike":
        q = Q(**{f"{path}__mg_ilike": value})
    elif op == "in":
        q = Q(**{f"{path}__in": list(values)})
    elif op in ("=", "!="):
        q = Q(**{path: values[0]})
        return ~q if op == "!=" else q
    else:
        q = Q(**{f"{path}__{_RANGE[op]}": values[0]})
    return ~q if node.negate else q


def _label(node: Compare) -> str:
    return f"{node.field}.{node.key}" if node.key is not None else node.field


# Plain fields per target: search name → (ORM path, numeric?).
MODEL_FIELDS = {
    "name": ("name", False),
    "owner": ("owner__username", False),
    "team": ("team__name", False),
    "risk_tier": ("risk_tier", False),
}
VERSION_FIELDS = {
    "name": ("registered_model__name", False),
    "version": ("version", True),
    "stage": ("stage", False),
    "status": ("status", False),
    "owner": ("registered_model__owner__username", False),
    "created_by": ("created_by__username", False),
    "team": ("registered_model__team__name", False),
    "risk_tier": ("registered_model__risk_tier", False),
    "run_id": ("run_id", False),
    "flavor": ("flavor", False),
}


def _compile(node: Any, target: str) -> Q:
    if isinstance(node, BoolOp):
        q = _compile(node.items[0], target)
        for item in node.items[1:]:
            q = (q & _compile(item, target)) if node.op == "AND" else (q | _compile(item, target))
        return q
    if isinstance(node, Not):
        return ~_compile(node.item, target)
    return _compare(node, target)


def _compare(node: Compare, target: str) -> Q:
    fields = MODEL_FIELDS if target == "model" else VERSION_FIELDS
    if node.field in ("tags", "metrics"):
        if node.key is None:
            raise SearchError(f"Name the {node.field[:-1]}: {node.field}.<key>", node.pos)
        return _related(node, target)
    if node.key is not None:
        raise SearchError(f"'{node.field}' has no sub-keys", node.pos)
    if target == "model" and node.field == "stage":
        # A model matches when any of its live versions is in that stage.
        inner = ModelVersion.objects.filter(
            registered_model=OuterRef("pk"), deleted_at__isnull=True
        )
        return _exists(inner, _lookup("stage", _positive(node), numeric=False), node)
    if node.field not in fields:
        raise SearchError(
            f"Unknown field '{node.field}'; use one of "
            f"{', '.join([*fields, 'stage', 'tags.<key>', 'metrics.<name>'])}",
            node.pos,
        )
    path, numeric = fields[node.field]
    return _lookup(path, node, numeric=numeric)


def _positive(node: Compare) -> Compare:
    """The same comparison without its negation; negation wraps the EXISTS instead."""
    op = "=" if node.op == "!=" else node.op
    return Compare(node.field, node.key, op, node.value, False, node.pos)


def _exists(inner: Any, condition: Q, node: Compare) -> Q:
    q = Q(Exists(inner.filter(condition)))
    return ~q if node.negate or node.op == "!=" else q


def _related(node: Compare, target: str) -> Q:
    numeric = node.field == "metrics"
    inner: QuerySet[RegisteredModelTag] | QuerySet[ModelVersionTag] | QuerySet[ModelVersionMetric]
    if node.field == "tags":
        if target == "model":
            inner = RegisteredModelTag.objects.filter(registered_model=OuterRef("pk"), key=node.key)
        else:
            inner = ModelVersionTag.objects.filter(version=OuterRef("pk"), key=node.key)
    elif target == "model":
        # A model matches when any of its live versions has a matching metric.
        inner = ModelVersionMetric.objects.filter(
            version__registered_model=OuterRef("pk"),
            version__deleted_at__isnull=True,
            name=node.key,
        )
    else:
        inner = ModelVersionMetric.objects.filter(version=OuterRef("pk"), name=node.key)
    condition = _lookup("value", _positive(node), numeric=numeric)
    if node.op == "!=":  # has the tag or metric, with another value
        return Q(Exists(inner.exclude(condition)))
    return _exists(inner, condition, node)


def to_q(text: str, *, target: str) -> Q:
    """Parse `text` and return a Q for registered models (target="model") or versions."""
    return _compile(parse(text), target)
