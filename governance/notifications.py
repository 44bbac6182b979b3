"""Who hears about a promotion request: e-mail to the reviewers who may decide it and to the
requester when it is decided; webhooks for automation. Everything leaves after the commit,
through Celery, so a slow mail server never holds a transaction or a web request."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse

from core.tasks import enqueue_on_commit
from governance import webhooks
from governance.models import PromotionRequest, Review
from registry.models import RegisteredModel

SEND_EMAIL = "governance.tasks.send_email"  # the Celery task that sends one e-mail (tasks.py)


def page_url(path: str) -> str:
    """An address people open from an e-mail: the dashboard page, on SITE_URL."""
    return settings.SITE_URL.rstrip("/") + path


def _url(promotion_request: PromotionRequest) -> str:
    """The request's page (where a reviewer decides), and its API address for automation."""
    return (
        page_url(reverse("governance:request-detail", kwargs={"pk": promotion_request.pk}))
        + "\nAPI: "
        + page_url(
            reverse("governance-api:promotion-request-detail", kwargs={"pk": promotion_request.pk})
        )
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


def request_waiting(promotion_request: PromotionRequest, reviewers: list[User]) -> None:
    """Tell every reviewer who may decide the request (promotions.eligible_reviewers: not the
    requester, nor anyone who supplied the version's content)."""
    who = (
        promotion_request.requested_by.username if promotion_request.requested_by else "automation"
    )
    _send(
        f"[Modelgate] Review requested: {_summary(promotion_request)}",
        f"{who} asks to move {_summary(promotion_request)}.\n\n"
        f"Justification: {promotion_request.justification or '(none given)'}\n\n"
        f"{_url(promotion_request)}\n",
        [u.email for u in reviewers],
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


def request_approved(promotion_request: PromotionRequest, *, applying: bool) -> None:
    """Approved: automation hears it in every case; the requester is e-mailed now unless the
    policy applies it at once (the "applied" e-mail follows in the same transaction)."""
    if not applying:
        _to_requester(
            promotion_request, "Request approved", "Your request is approved; apply it when ready."
        )
    _event("promotion.approved", promotion_request)


def card_waiting(
    registered_model: RegisteredModel, version_number: int, path: str, reviewers: list[User]
) -> None:
    """A model card submitted for review: tell who may approve it."""
    what = f"the model card of {registered_model.name} v{version_number}"
    _send(
        f"[Modelgate] Card review requested: {registered_model.name} v{version_number}",
        f"{what.capitalize()} waits for review.\n\n{page_url(path)}\n",
        [u.email for u in reviewers],
    )


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
