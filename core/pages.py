"""The page edge: the decorator every server-rendered view wears."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase

from core import signals
from core.errors import Forbidden, NotFound


def page(
    view: Callable[..., HttpResponseBase] | None = None, *, methods: tuple[str, ...] = ("GET",)
) -> Any:
    """Signed-in users only, only the given HTTP methods (405 otherwise; the permission matrix
    reads them from `wrapper.http_methods`); domain NotFound/Forbidden become 404/403."""
    if view is None:
        return lambda v: page(v, methods=methods)

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in methods and not (request.method == "HEAD" and "GET" in methods):
            return HttpResponseNotAllowed(methods)
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            signals.refusal.send(sender=type(exc), request=request, exc=exc)
            raise Http404(exc.message) from None
        except Forbidden as exc:
            signals.refusal.send(sender=type(exc), request=request, exc=exc)
            raise PermissionDenied(exc.message) from None

    wrapper.http_methods = methods  # type: ignore[attr-defined]
    return wrapper
