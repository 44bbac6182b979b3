"""MLflow's error shape: ``{"error_code": "...", "message": "..."}`` with MLflow's statuses.

Every refusal keeps Modelgate's own ``code`` beside MLflow's ``error_code`` (scripts written
against either read what they know). The MLflow client retries 408, 429 and 5xx for minutes,
so nothing a client did wrong is answered with one of those.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from core import signals
from core.errors import Conflict, DomainError, Forbidden, NotFound

RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
INVALID_STATE = "INVALID_STATE"
RESOURCE_CONFLICT = "RESOURCE_CONFLICT"  # 409: conflicts with the resource's current state
BAD_REQUEST = "BAD_REQUEST"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"

# Modelgate codes that MLflow names differently, and the status MLflow answers them with.
_BY_CODE = {
    "registered_model_exists": (RESOURCE_ALREADY_EXISTS, 400),
    "version_sealed": (INVALID_STATE, 400),
}


class MlflowError(DomainError):
    """A refusal phrased in MLflow's terms by the adapter itself."""

    def __init__(self, error_code: str, message: str, *, status: int = 400, code: str = "") -> None:
        super().__init__(message, code=code or error_code.lower())
        self.error_code = error_code
        self.status_code = status


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message, code="validation_failed")


def missing(message: str, code: str) -> MlflowError:
    return MlflowError(RESOURCE_DOES_NOT_EXIST, message, status=404, code=code)


def body(error_code: str, message: str, code: str) -> dict[str, Any]:
    return {"error_code": error_code, "message": message, "code": code}


def translate(exc: DomainError) -> tuple[str, int]:
    """MLflow's error code and status for a Modelgate domain error."""
    if isinstance(exc, MlflowError):
        return exc.error_code, exc.status_code
    if exc.code in _BY_CODE:
        return _BY_CODE[exc.code]
    if isinstance(exc, NotFound):
        return RESOURCE_DOES_NOT_EXIST, 404
    if isinstance(exc, Forbidden):
        return PERMISSION_DENIED, 403
    if isinstance(exc, Conflict):
        # Deleted, not ready, serving, already there: the model's state says no.
        return INVALID_STATE, 400
    return INVALID_PARAMETER_VALUE, 400


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    if isinstance(exc, DomainError):
        if exc.refusal and request is not None:
            signals.refusal.send(sender=DomainError, request=request, exc=exc)
        error_code, status = translate(exc)
        return Response(body(error_code, exc.message, exc.code), status=status)
    if isinstance(exc, Http404):
        return Response(body(RESOURCE_DOES_NOT_EXIST, "Not found.", "not_found"), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Response(
            body(UNAUTHENTICATED, str(exc.detail), "not_authenticated"),
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="modelgate", Bearer'},
        )
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(body(PERMISSION_DENIED, str(exc.detail), "permission_denied"), status=403)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(body(ENDPOINT_NOT_FOUND, str(exc.detail), "method_not_allowed"), status=405)
    if isinstance(exc, exceptions.ParseError):
        return Response(body(BAD_REQUEST, str(exc.detail), "malformed_request"), status=400)
    if isinstance(exc, exceptions.APIException):
        # Unsupported media type, not acceptable, …: the request is at fault.
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        status = 400 if status in (408, 429) else status
        return Response(body(BAD_REQUEST, str(exc.detail), str(exc.default_code)), status=status)
    return None


def not_found(request: HttpRequest) -> JsonResponse:
    """An unknown path under /api/2.0/: the code the client falls back on (get-latest-versions
    tries POST, then GET on ENDPOINT_NOT_FOUND)."""
    return JsonResponse(
        body(ENDPOINT_NOT_FOUND, f"No MLflow endpoint at {request.path[:200]}.", "not_found"),
        status=404,
    )
