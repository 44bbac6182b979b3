"""Who hears about a promotion request: e-mail to the reviewers who may decide it and to the
requester when it is decided; webhooks for automation. Everything leaves after the commit,
through Celery, so a slow mail server never holds a transaction or a web request."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from core import permissions
from core.permissions import Perm
from core.tasks import enqueue_on_commit
from governance import webhooks
from governance.models import PromotionRequest, Review

SEND_EMAIL = "governance.tasks.send_email"  # the Celery task that sends one e-mail (tasks.py)


def _url(request: PromotionRequest) -> str:
    return settings.SITE_URL.rstrip("/") + reverse(
        "governance-api:promotion-request-detail", kwargs={"pk": request.pk}
    )


def _summary(request: PromotionRequest) -> str:
    return f"{request.registered_model.name} v{request.version.version} → {request.target}"


def _send(subject: str, body: str, recipients: list[str]) -> None:
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return
    enqueue_on_commit(SEND_EMAIL, subject, body, recipients)


def _event(event: str, request: PromotionRequest) -> None:
    webhooks.emit(event, request)


def request_waiting(request: PromotionRequest) -> None:
    """Tell every reviewer who may decide the request (not the requester or the author)."""
    excluded = {request.requested_by_id, request.version.created_by_id}
    reviewers = [
        u.email
        for u in permissions.holders(Perm.APPROVE_PROMOTION, request.registered_model)
        if u.pk not in excluded
    ]
    who = request.requested_by.username if request.requested_by else "automation"
    _send(
        f"[Modelgate] Review requested: {_summary(request)}",
        f"{who} asks to move {_summary(request)}.\n\n"
        f"Justification: {request.justification or '(none given)'}\n\n{_url(request)}\n",
        reviewers,
    )
    _event("promotion.requested", request)


def _to_requester(request: PromotionRequest, subject: str, body: str) -> None:
    if request.requested_by is not None:
        _send(
            f"[Modelgate] {subject}: {_summary(request)}",
            f"{body}\n\n{_url(request)}\n",
            [request.requested_by.email],
        )


def request_reviewed(request: PromotionRequest, review: Review) -> None:
    who = review.reviewer.username if review.reviewer else "a reviewer"
    _to_requester(
        request,
        f"{review.get_decision_display()} by {who}",
        f"{who}: {review.get_decision_display().lower()}.\n\n{review.comment}",
    )
    _event("promotion.reviewed", request)


def request_decided(request: PromotionRequest) -> None:
    _to_requester(request, f"Request {request.status}", f"Your request is {request.status}.")
    _event(f"promotion.{request.status}", request)


def request_applied(request: PromotionRequest) -> None:
    _to_requester(request, "Applied", f"{_summary(request)} is done.")
    _event("promotion.applied", request)
