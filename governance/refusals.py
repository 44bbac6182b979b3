"""Edges call these to put refused accesses and failed logins in the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from governance import audit
from governance.actors import Actor
from registry.errors import DomainError
from registry.models import RegisteredModel


def refused(request: HttpRequest, exc: DomainError) -> None:
    """Record `exc` if it refused access to a model that exists (see DomainError.refusing)."""
    refusal = exc.refusal
    if not refusal:
        return
    registered_model = RegisteredModel(pk=refusal["registered_model_id"],
                                       name=refusal["registered_model_name"]) \
        if refusal["registered_model_id"] is not None else None
    action = str(refusal.get("action") or "access.refused")
    details: dict[str, object] = {"wanted": refusal["wanted"], "status": exc.status_code,
                                  "code": exc.code, "method": request.method,
                                  "path": request.path[:300]}
    if action != "access.refused":
        details["reason"] = exc.message[:500]
    audit.record_refusal(actor=Actor.from_request(request), action=action,
                         registered_model=registered_model, details=details)


def gate_refusal(exc: DomainError, registered_model: RegisteredModel, wanted: str) -> DomainError:
    """Mark `exc` as a refusal by the governance gate, so the edge audits it (gate.refused,
    with the reason) after the failed transaction rolled back."""
    return exc.refusing(registered_model.pk, registered_model.name, wanted,
                        action="gate.refused")


def token_rejected(request: HttpRequest, raw: str) -> None:
    # Called during DRF authentication: the DRF request's .user is what is being decided, so
    # the actor comes from the plain Django request underneath (anonymous or session user).
    request = getattr(request, "_request", request)
    audit.record_refusal(actor=Actor.from_request(request), action="auth.token_rejected",
                         details={"prefix": raw[3:11] if raw.startswith("mg_") else "",
                                  "path": request.path[:300]})


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                  **kwargs: Any) -> None:
    actor = Actor.from_request(request) if request is not None else Actor.system("web")
    audit.record_refusal(actor=actor, action="auth.login_failed",
                         details={"username": str(credentials.get("username", ""))[:150]})
