"""Error pages: JSON under /api/, HTML elsewhere."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.api import error_body, json_not_found, json_server_error
from governance.mlflow_api import errors as mlflow_errors


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's own 400s (a body past the memory limit, a suspicious request): 413 for the
    first, and a JSON body with a code under /api/."""
    api = request.path.startswith("/api/")
    if isinstance(exception, RequestDataTooBig):
        message = (
            "The request body is too large for this endpoint; artifacts go to the "
            "artifact upload endpoint, which streams."
        )
        if api:
            return JsonResponse(error_body("too_large", message), status=413)
        return HttpResponse(message, status=413, content_type="text/plain")
    if api:
        return JsonResponse(
            error_body("bad_request", "The request was refused as malformed."), status=400
        )
    return HttpResponse("Bad request.", status=400, content_type="text/plain")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/2.0/"):
        return mlflow_errors.not_found(request)
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return render(request, "500.html", status=500)
