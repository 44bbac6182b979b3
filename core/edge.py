"""The edge: input no view should ever see becomes a 4xx here, before any query runs.

A NUL byte in the path, a query parameter or a JSON string is refused (PostgreSQL text cannot
hold one, so it would otherwise surface as a 500 from the database), and so is JSON nested
deeper than MAX_JSON_DEPTH (Python's parser would end in a RecursionError). Whole numbers and
instants taken from a query string go through `whole_number` and `instant`, which refuse what
no column can hold (past 2**63 - 1; a time outside years 1-9999 once in UTC, or an offset of a
day or more) with a ValidationFailed, instead of an OverflowError from SQLite or a time zone
PostgreSQL does not accept (its offsets stop at 15:59). A request body past Django's memory
limit is a 413 with a code (config/views.py, `bad_request`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.dateparse import parse_datetime
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.api import error_body
from core.errors import ValidationFailed

MAX_JSON_DEPTH = 200
MAX_WHOLE_NUMBER = 2**63 - 1  # the largest value of a 64-bit integer column
_DIGITS = re.compile(r"[0-9]+")
NUL_MESSAGE = "The request contains a NUL character (\\u0000), which no field accepts."


def _has_nul(query: Any) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in query.lists())


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class RejectNulBytes:
    """Middleware: 400 for a NUL byte in the path, the query string or a page's form (JSON for
    the API). API bodies are JSON, checked by SafeJSONParser, or files, which the upload views
    parse themselves with their size limits; pages take no files, and Django's CSRF check
    reads their forms anyway."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        form = (
            request.method == "POST"
            and not request.path.startswith("/api/")
            and request.content_type in _FORMS
        )
        if "\x00" in request.path or _has_nul(request.GET) or (form and _has_nul(request.POST)):
            if request.path.startswith("/api/"):
                return JsonResponse(error_body("invalid_characters", NUL_MESSAGE), status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain")
        return self.get_response(request)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ParseError(NUL_MESSAGE)
    if _SURROGATE.search(text):
        raise ParseError("Text may not contain lone UTF-16 surrogates (\\ud800–\\udfff).")


def check_json(value: Any) -> None:
    """Raise ParseError for a NUL or a lone UTF-16 surrogate (JSON's "\\ud800", which no
    database can store: UTF-8 has no encoding for it) in any string or key, or nesting past
    MAX_JSON_DEPTH. An explicit stack, so depth costs no recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                _check_text(key)
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)


class SafeJSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the edge's checks (and a 400 rather than a RecursionError for
    documents too deep for Python's own parser)."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        check_json(data)
        return data


def tag_filters(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`tag=key=value` filters (API and pages alike), exactly as given: tag keys and values may
    hold spaces. 400 invalid_filter for one without '=' or without a key."""
    pairs = []
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise ValidationFailed(
                "tag filters look like tag=key=value.", field="tag", code="invalid_filter"
            )
        pairs.append((key, value))
    return tuple(pairs)


def is_whole_number(raw: str) -> bool:
    """Whether `whole_number` would take it (str.isdigit() also says yes to '²' and '١')."""
    text = raw.strip()
    return bool(_DIGITS.fullmatch(text)) and len(text) <= 20 and int(text) <= MAX_WHOLE_NUMBER


def whole_number(raw: str, field: str, *, code: str = "validation_failed") -> int:
    """A whole number from a query string: ASCII digits only (no sign, no '²'), at most what a
    64-bit column holds."""
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        raise ValidationFailed(f"{field} must be a whole number.", field=field, code=code)
    if not is_whole_number(text):  # the one range rule: at most MAX_WHOLE_NUMBER
        raise ValidationFailed(f"{field} is larger than any stored number.", field=field, code=code)
    return int(text)


def instant(
    raw: str, field: str, *, naive_is_utc: bool = False, code: str = "invalid_filter"
) -> datetime:
    """An ISO 8601 time from a query string, as an aware UTC datetime.

    A '+' in the offset often arrives decoded as a space, so a last space is read as '+' when
    the text does not parse as it is. Without an offset the time is refused, unless
    `naive_is_utc` (pages, whose forms say "UTC")."""
    text = raw.strip()
    example = "2026-03-01T12:00:00Z"
    try:
        value = parse_datetime(text)
        if value is None and " " in text:
            cut = text.rfind(" ")
            value = parse_datetime(f"{text[:cut]}+{text[cut + 1 :]}")
    except ValueError:  # parsed, but impossible: 2026-02-30, an offset of a day or more
        value = None
    if value is None:
        raise ValidationFailed(
            f"{field} must be an ISO 8601 time like {example}.", field=field, code=code
        )
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ValidationFailed(
                f"{field} needs a time zone, like {example}.", field=field, code=code
            )
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed(
            f"{field} is outside the years 1 to 9999 in UTC.", field=field, code=code
        ) from None
