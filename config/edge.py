"""The edge: input no view should ever see becomes a 4xx here, before any query runs.

A NUL byte in the path, a query parameter or a JSON string is refused (PostgreSQL text cannot
hold one, so it would otherwise surface as a 500 from the database), and so is JSON nested
deeper than MAX_JSON_DEPTH (Python's parser would end in a RecursionError).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from config.api import error_body

MAX_JSON_DEPTH = 200
NUL_MESSAGE = "The request contains a NUL character (\\u0000), which no field accepts."


class RejectNulBytes:
    """Middleware: 400 for a NUL byte in the path or the query string (JSON for the API)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any("\x00" in key or any("\x00" in v for v in values)
                                         for key, values in request.GET.lists()):
            if request.path.startswith("/api/"):
                return JsonResponse(error_body("invalid_characters", NUL_MESSAGE), status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain")
        return self.get_response(request)


def check_json(value: Any) -> None:
    """Raise ParseError for a NUL in any string or key, or nesting past MAX_JSON_DEPTH. An
    explicit stack, so depth costs no recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, str):
            if "\x00" in item:
                raise ParseError(NUL_MESSAGE)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if "\x00" in key:
                    raise ParseError(NUL_MESSAGE)
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)


class SafeJSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the edge's checks (and a 400 rather than a RecursionError for
    documents too deep for Python's own parser)."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        check_json(data)
        return data
