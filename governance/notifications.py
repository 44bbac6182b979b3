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


def _url(promotion_request: PromotionRequest) -> str:
    return settings.SITE_URL.rstrip("/") + reverse(
        "governance-api:promotion-request-detail", kwargs={"pk": promotion_request.pk}
    )


def _summary(promotion_request: PromotionRequest) -> str:
    pr = promotion_request
    return f"{pr.registered_model.name} v{pr.version.version} → {pr.target}"


def _send(subject: str, body: str, recipients: list[str]) -> None:
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return
    enqueue_on_commit(SEND_EMAIL, subject, body, recipients)


def _event(event: str, promotion_request: PromotionRequest) -> None:
    webhooks.emit(event, promotion_request)


def request_waiting(promotion_request: PromotionRequest) -> None:
    """Tell every reviewer who may decide the request (not the requester or the author)."""
    excluded = {promotion_request.requested_by_id, promotion_request.version.created_by_id}
    reviewers = [
        u.email
        for u in permissions.holders(Perm.APPROVE_PROMOTION, promotion_request.registered_model)
        if u.pk not in excluded
    ]
    who = (
        promotion_request.requested_by.username if promotion_request.requested_by else "automation"
    )
    _send(
        f"[Modelgate] Review requested: {_summary(promotion_request)}",
        f"{who} asks to move {_summary(promotion_request)}.\n\n"
        f"Justification: {promotion_request.justification or '(none given)'}\n\n"
        f"{_url(promotion_request)}\n",
        reviewers,
    )
    _event("promotion.requested", promotion_request)


def _to_requester(promotion_request: PromotionRequest, subject: str, body: str) -> None:
    if promotion_request.requested_by is not None:
        _send(
            f"[Modelgate] {subject}: {_summary(promotion_request)}",
            f"{body}\n\n{_url(promotion_request)}\n",
            [promotion_request.requested_by.email],
        )


def request_reviewed(promotion_request: PromotionRequest, review: Review) -> None:
    who = review.reviewer.username if review.reviewer else "a reviewer"
    _to_requester(
        promotion_request,
        f"{review.get_decision_display()} by {who}",
        f"{who}: {review.get_decision_display().lower()}.\n\n{review.comment}",
    )
    _event("promotion.reviewed", promotion_request)


def request_decided(promotion_request: PromotionRequest) -> None:
    _to_requester(
        promotion_request,
        f"Request {promotion_request.status}",
        f"Your request is {promotion_request.status}.",
    )
    _event(f"promotion.{promotion_request.status}", promotion_request)


def request_applied(promotion_request: PromotionRequest) -> None:
    _to_requester(promotion_request, "Applied", f"{_summary(promotion_request)} is done.")
    _event("promotion.applied", promotion_request)
