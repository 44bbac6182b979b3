"""The API's error shape and pagination: one exception handler, one paginator.

Every error leaves as ``{"code": "...", "message": "...", "fields": {...}}`` with a 4xx status.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, pagination, renderers
from rest_framework.request import Request
from rest_framework.response import Response

from core import signals
from core.errors import DomainError, ValidationFailed

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
}


def _flatten(detail: Any) -> dict[str, list[str]]:
    """DRF's nested error detail as {field: [messages]}; nested paths joined with dots."""
    out: dict[str, list[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            if all(not isinstance(v, dict | list) for v in value):
                out.setdefault(path or "non_field_errors", []).extend(str(v) for v in value)
            else:
                for i, sub in enumerate(value):
                    walk(sub, f"{path}[{i}]")
        else:
            out.setdefault(path or "non_field_errors", []).append(str(value))

    walk(detail, "")
    return out


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"code": code, "message": message, "fields": fields or {}, **extra}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        if exc.refusal and context.get("request") is not None:
            signals.refusal.send(sender=DomainError, request=context["request"], exc=exc)
        return Response(
            error_body(exc.code, exc.message, exc.fields, **exc.extra), status=exc.status_code
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()), ("", ["Invalid input."]))
        message = f"{first[0]}: {first[1][0]}" if first[0] != "non_field_errors" else first[1][0]
        return Response(error_body("validation_failed", message, fields), status=400)
    if isinstance(exc, exceptions.APIException):
        code = next(
            (c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), str(exc.default_code)
        )
        headers: dict[str, str] = {}
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
        if wait is not None:
            headers["Retry-After"] = str(int(wait))
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        status = exc.status_code
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            request = context.get("request")
            authenticator = getattr(request, "_authenticator", None) if request else None
            if authenticator is None and request is not None and request.authenticators:
                headers["WWW-Authenticate"] = (
                    request.authenticators[0].authenticate_header(request) or ""
                )
            status = 401 if headers.get("WWW-Authenticate") else 403
        return Response(error_body(code, str(detail)), status=status, headers=headers)
    return None


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body("server_error", "Internal error; it has been logged."), status=500
    )


class CursorPagination(pagination.CursorPagination):
    """Stable cursor pages. Views list the orderings a client may ask for."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-created_at"

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        allowed = tuple(getattr(view, "ordering_fields", ()))
        default = getattr(view, "ordering", self.ordering)
        value = request.query_params.get("ordering") or default
        if value not in allowed and value != default:
            raise ValidationFailed(
                f"ordering must be one of {', '.join(allowed or (default,))}.",
                field="ordering",
                code="invalid_ordering",
            )
        tiebreak = "-pk" if value.startswith("-") else "pk"
        return (value, tiebreak)

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise ValidationFailed(
                "The cursor is invalid; start again from the first page.",
                field="cursor",
                code="invalid_cursor",
            ) from None


class DownloadRenderer(renderers.BaseRenderer):
    """For views that answer a file (CSV, JSON Lines, Markdown) as a plain HttpResponse:
    content negotiation accepts the file's media type, and error bodies still render as the
    usual JSON. Subclasses set media_type and format."""

    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data).encode()
