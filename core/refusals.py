"""Edges call these to put refused accesses and failed logins in the audit log."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

from axes.helpers import get_failure_limit
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core import audit
from core import signals as core_signals
from core.actors import Actor
from core.errors import DomainError


@dataclass(frozen=True)
class _Refused:
    """The model a refusal concerned, as the exception carried it."""

    pk: int
    name: str


def refused(request: HttpRequest, exc: DomainError) -> None:
    """Record `exc` if it refused access to a model that exists (see DomainError.refusing)."""
    refusal = exc.refusal
    if not refusal:
        return
    registered_model = (
        _Refused(int(str(refusal["registered_model_id"])), str(refusal["registered_model_name"]))
        if refusal["registered_model_id"] is not None
        else None
    )
    action = str(refusal.get("action") or "access.refused")
    details: dict[str, object] = {
        "wanted": refusal["wanted"],
        "status": exc.status_code,
        "code": exc.code,
        "method": request.method,
        "path": request.path[:300],
    }
    if action != "access.refused":
        details["reason"] = exc.message[:500]
    audit.record_refusal(
        actor=Actor.from_request(request),
        action=action,
        registered_model=registered_model,
        details=details,
    )


@receiver(core_signals.refusal, dispatch_uid="core.refused")
def _record_api_refusal(
    sender: object, request: HttpRequest, exc: DomainError, **_: object
) -> None:
    """The API's exception handler (core/api.py) announces refusals; the audit log keeps them."""
    refused(request, exc)


E = TypeVar("E", bound=DomainError)


def gate_refusal(exc: E, registered_model: audit.ModelRef, wanted: str) -> E:
    """Mark `exc` as a refusal by the governance gate, so the edge audits it (gate.refused,
    with the reason) after the failed transaction rolled back."""
    return exc.refusing(registered_model.pk, registered_model.name, wanted, action="gate.refused")


def token_rejected(request: HttpRequest, raw: str) -> None:
    # Called during DRF authentication: the DRF request's .user is what is being decided, so
    # the actor comes from the plain Django request underneath (anonymous or session user).
    request = getattr(request, "_request", request)
    audit.record_refusal(
        actor=Actor.from_request(request),
        action="auth.token_rejected",
        details={"prefix": raw[3:11] if raw.startswith("mg_") else "", "path": request.path[:300]},
    )


# Failed sign-ins and lockouts. django-axes counts failures per user name and address and
# says so on the request: `axes_failures_since_start` is the count once it counted this attempt;
# `axes_locked_out` without a count means its backend refused the attempt before any password
# check because the pair was already locked. Its user_locked_out signal comes from inside its
# own user_login_failed receiver, so which of the two receivers below runs first is up to
# Django; each leaves a note on the request, so the log reads "failed", then "locked out"
# either way.


def _refused_while_locked(request: HttpRequest) -> bool:
    return (
        bool(getattr(request, "axes_locked_out", False))
        and getattr(request, "axes_failures_since_start", None) is None
    )


@receiver(user_login_failed)
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    actor = Actor.from_request(request) if request is not None else Actor.system("web")
    details: dict[str, object] = {"username": str(credentials.get("username", ""))[:150]}
    if request is None or not settings.AXES_ENABLED:
        audit.record_refusal(actor=actor, action="auth.login_failed", details=details)
        return
    if _refused_while_locked(request):  # the password was not checked; throttled
        audit.record_refusal(
            actor=actor, action="auth.login_refused", details={**details, "reason": "locked out"}
        )
        return
    audit.record_login_event(actor=actor, action="auth.login_failed", details=details)
    request._modelgate_failure_recorded = True  # type: ignore[attr-defined]
    lockout = getattr(request, "_modelgate_lockout", None)
    if lockout is not None:
        audit.record_login_event(actor=actor, action="auth.locked_out", details=lockout)


@receiver(user_locked_out)
def _locked_out(
    sender: Any, request: HttpRequest | None = None, username: str | None = None, **kwargs: Any
) -> None:
    if request is None or _refused_while_locked(request):
        return  # an attempt while already locked: recorded as auth.login_refused
    credentials = getattr(request, "axes_credentials", None)
    lockout = {
        "username": str(username or "")[:150],
        "failures": request.axes_failures_since_start,  # type: ignore[attr-defined]
        "limit": get_failure_limit(request, credentials),
        "cool_off_minutes": math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    if getattr(request, "_modelgate_failure_recorded", False):
        audit.record_login_event(
            actor=Actor.from_request(request), action="auth.locked_out", details=lockout
        )
    else:
        request._modelgate_lockout = lockout  # type: ignore[attr-defined]


def locked_out_page(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """What a locked-out sign-in sees (AXES_LOCKOUT_CALLABLE): a 429 page saying why and for
    how long, never the form again with a generic error. Under /api/ the API already answered
    the refused sign-in in its own shape (HTTP basic, for the MLflow client), so that stands."""
    if request.path.startswith("/api/") and original_response is not None:
        return original_response
    username = str((credentials or {}).get("username") or request.POST.get("username", ""))
    return render(
        request,
        "registration/locked_out.html",
        status=429,
        context={
            "username": username[:150],
            "failure_limit": get_failure_limit(request, credentials),
            "minutes": math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
        },
    )
