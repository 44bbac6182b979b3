"""Card pages: the card as a document (prints cleanly), the editor, history with diffs, and
the review actions. Forms post to services; refusals come back as messages, never a 500."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from cards import content as card_content
from cards import formats, selectors, services
from cards.api.views import export_response
from cards.models import ModelCard
from core import permissions
from core.actors import Actor
from core.edge import whole_number
from core.errors import DomainError
from core.pages import page
from core.permissions import Perm
from core.refusals import refused
from registry import evaluation_views
from registry import selectors as registry_selectors


def _card(request: HttpRequest, name: str, number: int) -> ModelCard:
    registered_model = registry_selectors.registered_model_get(user=request.user, name=name)
    version = registry_selectors.version_get(
        user=request.user, registered_model=registered_model, number=number
    )
    return selectors.card_get(user=request.user, version=version)


def _url(card: ModelCard, view: str = "card") -> str:
    return reverse(f"cards:{view}", args=[card.registered_model.name, card.version.version])


def _context(
    request: HttpRequest, card: ModelCard, content: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """What card pages show; `content` replaces the stored content (a rejected form's text,
    shown back unvalidated so nothing typed is lost)."""
    required = services.required_sections(card)
    content = content or card_content.normalise(card.content)
    completeness = card_content.completeness(content, required)
    approvers, needed, admin_needed = services.approvals(card)
    return {
        "card": card,
        "version": card.version,
        "registered_model": card.registered_model,
        "content": content,
        "details": formats.to_json(card)["model_details"],
        "sections": [
            (s, content["sections"][s.key], s.key in required) for s in card_content.SECTIONS
        ],
        "completeness": completeness,
        "missing_titles": [card_content.TITLES[k] for k in completeness.missing],
        "metric_groups": formats.metric_groups(card),
        "evaluations": evaluation_views.shown(
            list(registry_selectors.evaluation_list(card.version)), full=False
        ),
        "approvers": approvers,
        "approvals_needed": needed,
        "admin_needed": admin_needed,
        "may_edit": permissions.has(request.user, Perm.CHANGE, card.registered_model),
        "review_refusal": services.review_refusal(request.user, card),
        "eligible_reviewers": services.eligible_reviewers(card, approvers)
        if card.status == ModelCard.Status.IN_REVIEW
        else [],
        **extra,
    }


@page
def card_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    card = _card(request, name, number)
    return render(request, "cards/card_detail.html", _context(request, card))


def _posted_changes(request: HttpRequest) -> dict[str, Any]:
    post = request.POST

    def split(key: str) -> list[str]:
        return [v.strip() for v in post.get(key, "").split(",") if v.strip()]

    return {
        "model_details": {
            "authors": split("authors"),
            "model_type": post.get("model_type", ""),
            "architecture": post.get("architecture", ""),
        },
        "sections": {k: post.get(f"section_{k}", "") for k in card_content.SECTION_KEYS},
        "metadata": {
            **{k: split(k) for k in card_content.METADATA_LISTS},
            **{k: post.get(k, "") for k in card_content.METADATA_STRINGS},
        },
    }


@page(methods=("GET", "POST"))
def card_edit(request: HttpRequest, name: str, number: int) -> HttpResponse:
    card = _card(request, name, number)
    permissions.require(request.user, Perm.CHANGE, card.registered_model)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        changes = _posted_changes(request)
        try:
            base = int(request.POST.get("base_revision", "0")) or None
            services.card_update(
                actor=Actor.from_request(request),
                card=card,
                changes=changes,
                base_revision=base,
                note=request.POST.get("note", ""),
            )
        except (DomainError, ValueError) as exc:
            message = getattr(exc, "message", "The form is malformed.")
            errors = getattr(exc, "fields", {}) or {"form": [message]}
            messages.error(request, message)
            # Show what was typed, not what is stored: nothing the user wrote is lost.
            draft = card_content.normalise(card.content)
            for part, values in changes.items():
                draft[part].update(values)
            return render(
                request,
                "cards/card_edit.html",
                _context(
                    request,
                    card,
                    content=draft,
                    errors=errors,
                    base_revision=request.POST.get("base_revision"),
                ),
                status=400,
            )
        messages.success(request, "Saved.")
        return HttpResponseRedirect(_url(card))
    return render(
        request,
        "cards/card_edit.html",
        _context(request, card, errors=errors, base_revision=card.revision),
    )


@page
def card_history(request: HttpRequest, name: str, number: int) -> HttpResponse:
    card = _card(request, name, number)
    revisions = selectors.revisions(card)
    diff, a, b = None, request.GET.get("from"), request.GET.get("to")
    if not a and not b and len(revisions) >= 2:  # open on the latest change
        a, b = str(revisions[1].number), str(revisions[0].number)
    if a and b:
        try:
            diff = services.diff(card, whole_number(a, "from"), whole_number(b, "to"))
        except DomainError as exc:
            messages.error(request, getattr(exc, "message", "Pick two revisions."))
    return render(
        request,
        "cards/card_history.html",
        _context(request, card, revisions=revisions, diff=diff, a=a, b=b),
    )


def _action(request: HttpRequest, name: str, number: int, run: Any, done: str) -> HttpResponse:
    card = _card(request, name, number)
    try:
        run(Actor.from_request(request), card)
        messages.success(request, done)
    except DomainError as exc:
        if exc.is_access_refusal:
            raise  # not allowed at all: the page wrapper answers 404 or 403
        refused(request, exc)  # a gate's refusal (separation of duties) is audited
        messages.error(request, exc.message)
    return HttpResponseRedirect(_url(card))


@page(methods=("POST",))
def card_submit(request: HttpRequest, name: str, number: int) -> HttpResponse:
    return _action(
        request,
        name,
        number,
        lambda actor, card: services.card_submit(actor=actor, card=card),
        "Submitted for review.",
    )


@page(methods=("POST",))
def card_review(request: HttpRequest, name: str, number: int) -> HttpResponse:
    decision = request.POST.get("decision", "")
    return _action(
        request,
        name,
        number,
        lambda actor, card: services.card_review(
            actor=actor, card=card, decision=decision, comment=request.POST.get("comment", "")
        ),
        "Review recorded.",
    )


@page(methods=("POST",))
def card_restore(request: HttpRequest, name: str, number: int, revision: int) -> HttpResponse:
    return _action(
        request,
        name,
        number,
        lambda actor, card: services.card_restore(actor=actor, card=card, number=revision),
        f"Revision {revision} restored.",
    )


@page(methods=("POST",))
def card_import(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """Paste a Hugging Face README: mapped parts become a new revision; the rest is listed."""
    card = _card(request, name, number)
    permissions.require(request.user, Perm.CHANGE, card.registered_model)
    try:
        changes, report = formats.from_hf_readme(request.POST.get("readme", ""))
        services.card_update(
            actor=Actor.from_request(request),
            card=card,
            changes=changes,
            note="Imported from a Hugging Face README",
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(_url(card, "card-edit"))
    messages.success(request, "Imported.")
    for label, items in (
        ("Metadata not mapped", report["unmapped_metadata"]),
        ("Sections not mapped", report["unmapped_sections"]),
    ):
        if items:
            messages.warning(request, f"{label}: {', '.join(items)}.")
    return HttpResponseRedirect(_url(card, "card-edit"))


@page
def card_export(request: HttpRequest, name: str, number: int, file_format: str) -> HttpResponse:
    return export_response(_card(request, name, number), file_format)
