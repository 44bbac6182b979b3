"""Model card changes: start, edit (a revision per save), restore, submit, review.

Every function checks permission through core.permissions first, locks the card row,
and records an audit event in the same transaction.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from cards import content as card_content
from cards.models import CardReview, CardRevision, ModelCard
from core import audit, permissions
from core.actors import Actor
from core.compiled import CompiledQuery
from core.errors import Conflict, Forbidden, ValidationFailed
from core.permissions import AnyUser, Perm
from core.refusals import gate_refusal
from governance import notifications, policies, promotions
from registry import validation
from registry.models import ModelVersion

Status = ModelCard.Status
MAX_COMMENT = 5000


def _user(actor: Actor) -> User | None:
    user = actor.user
    return user if isinstance(user, User) and actor.user_id is not None else None


# Every version's creation reads this: compiled once per process (core.compiled).
_PREVIOUS_CARD: CompiledQuery[ModelCard] = CompiledQuery(
    lambda shape, model_id, number: (
        ModelCard.objects.filter(registered_model_id=model_id, version__version__lt=number)
        .select_related("version")
        .order_by("-version__version")[:1]
    )
)


def card_start(*, actor: Actor, version: ModelVersion) -> ModelCard:
    """The card a new version starts with: a copy of the newest earlier version's card.
    Runs inside the version's creation (registry.signals.version_created)."""
    previous = _PREVIOUS_CARD.first(model_id=version.registered_model_id, number=version.version)
    content = card_content.normalise(previous.content) if previous else card_content.empty()
    now = timezone.now()
    card = ModelCard.objects.create(
        version=version,
        registered_model_id=version.registered_model_id,
        content=content,
        last_edited_by=_user(actor),
        created_at=now,
        updated_at=now,
    )
    note = f"Copied from version {previous.version.version}'s card" if previous else "New card"
    CardRevision.objects.create(
        card=card, number=1, content=content, author=_user(actor), note=note, created_at=now
    )
    audit.record(
        actor=actor,
        action="card.created",
        target=card,
        registered_model=version.registered_model,
        details={"version": version.version, "note": note},
    )
    return card


def _locked(card: ModelCard) -> ModelCard:
    return (
        ModelCard.objects.select_for_update(of=("self",))
        .select_related("version", "registered_model", "last_edited_by")
        .get(pk=card.pk)
    )


def required_sections(card: ModelCard) -> list[str]:
    return list(policies.policy_for(card.registered_model).card_required_sections)


def _save_revision(
    actor: Actor, card: ModelCard, new: dict[str, Any], note: str, action: str
) -> ModelCard:
    before = card.content
    changed = [
        f"{part}.{key}"
        for part in new
        for key in new[part]
        if before.get(part, {}).get(key) != new[part][key]
    ]
    previous_status = card.status
    now = timezone.now()
    card.content, card.revision = new, card.revision + 1
    card.last_edited_by, card.updated_at = _user(actor), now
    if card.status in (Status.APPROVED, Status.IN_REVIEW):
        card.status, card.approved_at = Status.DRAFT, None  # what was reviewed has changed
    card.save()
    CardRevision.objects.create(
        card=card,
        number=card.revision,
        content=new,
        author=_user(actor),
        note=note[:200],
        created_at=now,
    )
    audit.record(
        actor=actor,
        action=action,
        target=card,
        registered_model=card.registered_model,
        details={
            "version": card.version.version,
            "revision": card.revision,
            "changed": changed,
            "status": {"from": previous_status, "to": card.status},
        },
    )
    # The card revision is under the version's content digest (when the policy requires an
    # approved card): approvals given on the old one stop counting.
    promotions.content_changed(actor=actor, version=card.version)
    return card


@transaction.atomic
def card_update(
    *, actor: Actor, card: ModelCard, changes: Any, base_revision: int | None = None, note: str = ""
) -> ModelCard:
    """Apply `changes` (a partial card) as a new revision. With `base_revision` (the revision
    the editor loaded), a save on top of someone else's newer save is refused rather than
    silently overwriting it. Editing an approved or in-review card returns it to draft."""
    permissions.require(actor.user, Perm.CHANGE, card.registered_model)
    card = _locked(card)
    if base_revision is not None and base_revision != card.revision:
        raise Conflict(
            f"The card changed since you opened it (revision {base_revision}, now "
            f"{card.revision}); reload it and apply your edits again.",
            code="card_changed",
            extra={"revision": card.revision},
        )
    new = card_content.merge(card_content.normalise(card.content), changes)
    if new == card.content:
        return card
    return _save_revision(actor, card, new, note or "Edited", "card.updated")


@transaction.atomic
def card_restore(*, actor: Actor, card: ModelCard, number: int) -> ModelCard:
    """Make an old revision's content current again, as a new revision."""
    permissions.require(actor.user, Perm.CHANGE, card.registered_model)
    card = _locked(card)
    old = CardRevision.objects.filter(card=card, number=number).first()
    if old is None:
        raise ValidationFailed(
            f"The card has no revision {number}.", field="revision", code="revision_not_found"
        )
    new = card_content.normalise(old.content)
    if new == card.content:
        raise Conflict(f"Revision {number} is what the card says now.", code="nothing_to_restore")
    return _save_revision(actor, card, new, f"Restored revision {number}", "card.restored")


@transaction.atomic
def card_submit(*, actor: Actor, card: ModelCard) -> ModelCard:
    permissions.require(actor.user, Perm.CHANGE, card.registered_model)
    card = _locked(card)
    if card.status not in (Status.DRAFT, Status.CHANGES_REQUESTED):
        raise Conflict(
            f"The card is {card.get_status_display().lower()}; only a draft or a card "
            "with changes requested can be submitted.",
            code="card_not_draft",
        )
    done = card_content.completeness(card.content, required_sections(card))
    if not done.complete:
        titles = ", ".join(card_content.TITLES[k] for k in done.missing)
        raise Conflict(
            f"Write the required sections first: {titles}.",
            code="card_incomplete",
            extra={"missing": done.missing},
        )
    now = timezone.now()
    card.status, card.submitted_by, card.submitted_at, card.updated_at = (
        Status.IN_REVIEW,
        _user(actor),
        now,
        now,
    )
    card.save(update_fields=["status", "submitted_by", "submitted_at", "updated_at"])
    audit.record(
        actor=actor,
        action="card.submitted",
        target=card,
        registered_model=card.registered_model,
        details={"version": card.version.version, "revision": card.revision},
    )
    notifications.card_waiting(
        card.registered_model,
        card.version.version,
        reverse("cards:card", args=[card.registered_model.name, card.version.version]),
        eligible_reviewers(card),
    )
    return card


def eligible_reviewers(card: ModelCard, approvers: list[Any] | None = None) -> list[User]:
    """Who may review the card's current revision (review_refusal's rule for many): holders
    of the approval right on its model, less whoever edited the revision last and those whose
    approval of it already counts (`approvers`, when the caller has `approvals(card)`
    already). One query, plus the approvals when not given."""
    if card.registered_model.is_deleted:
        return []
    counted = {u.pk for u in (approvals(card)[0] if approvers is None else approvers)}
    return [
        u
        for u in permissions.deciders(Perm.APPROVE_PROMOTION, card.registered_model)
        if u.pk != card.last_edited_by_id and u.pk not in counted
    ]


def review_refusal(user: AnyUser, card: ModelCard) -> str | None:
    """Why `user` may not review this card now, or None."""
    if user is None or not permissions.has(user, Perm.APPROVE_PROMOTION, card.registered_model):
        return "You may not approve this model's cards."
    if card.last_edited_by_id == user.pk:
        return "You edited this revision last; another reviewer must decide it."
    if card.status != Status.IN_REVIEW:
        return f"The card is {card.get_status_display().lower()}, not in review."
    return None


def approvals(card: ModelCard) -> tuple[list[Any], int, bool]:
    """(approvers of the current revision, approvals needed, whether an admin is needed)."""
    policy = policies.policy_for(card.registered_model)
    latest = policies.latest_decisions(
        card.reviews.filter(revision=card.revision)
        .select_related("reviewer")
        .order_by("created_at", "pk")
    )
    approvers = [r.reviewer for r in latest.values() if r.decision == CardReview.Decision.APPROVE]
    return approvers, max(1, policy.production_approvals), policy.admin_approval_required


@transaction.atomic
def card_review(*, actor: Actor, card: ModelCard, decision: str, comment: str = "") -> ModelCard:
    """Approve or request changes. The card is approved when enough distinct reviewers (the
    model's policy: its production approvals, at least one, and an administrator if the policy
    says so) approve the current revision; its last editor may not review it."""
    permissions.require(actor.user, Perm.APPROVE_PROMOTION, card.registered_model)
    if decision not in CardReview.Decision.values:
        raise ValidationFailed(
            f"decision must be one of {', '.join(CardReview.Decision.values)}.", field="decision"
        )
    comment = validation.text(comment or "", field="comment", max_length=MAX_COMMENT).strip()
    if decision == CardReview.Decision.REQUEST_CHANGES and not comment:
        raise ValidationFailed("Say what should change.", field="comment")
    card = _locked(card)
    if card.status != Status.IN_REVIEW:
        raise Conflict(
            f"The card is {card.get_status_display().lower()}; only a card in review "
            "can be reviewed.",
            code="card_not_in_review",
        )
    refusal = review_refusal(actor.user, card)
    if refusal is not None:
        raise gate_refusal(
            Forbidden(refusal, code="separation_of_duties"),
            card.registered_model,
            "review the model card",
        )
    now = timezone.now()
    CardReview.objects.create(
        card=card,
        revision=card.revision,
        reviewer=_user(actor),  # actor.user: the gate above let only a signed-in user through
        decision=decision,
        comment=comment,
        created_at=now,
    )
    audit.record(
        actor=actor,
        action="card.reviewed",
        target=card,
        registered_model=card.registered_model,
        details={
            "version": card.version.version,
            "revision": card.revision,
            "decision": decision,
            "comment": comment[:500],
        },
    )
    if decision == CardReview.Decision.REQUEST_CHANGES:
        card.status = Status.CHANGES_REQUESTED
    else:
        approvers, needed, admin_needed = approvals(card)
        admin_ok = not admin_needed or policies.admin_among(approvers, card.registered_model)
        if len(approvers) >= needed and admin_ok:
            card.status, card.approved_at = Status.APPROVED, now
            audit.record(
                actor=actor,
                action="card.approved",
                target=card,
                registered_model=card.registered_model,
                details={
                    "version": card.version.version,
                    "revision": card.revision,
                    "approvers": [u.username for u in approvers],
                },
            )
    card.updated_at = now
    card.save(update_fields=["status", "approved_at", "updated_at"])
    if card.status == Status.APPROVED:
        promotions.content_changed(actor=actor, version=card.version)
    return card


def _lines(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else str(value or "").splitlines()


def diff(card: ModelCard, a: int, b: int) -> list[dict[str, Any]]:
    """What changed from revision `a` to revision `b`, field by field, as unified diff lines."""
    found = {r.number: r for r in CardRevision.objects.filter(card=card, number__in=[a, b])}
    for number in (a, b):
        if number not in found:
            raise ValidationFailed(
                f"The card has no revision {number}.", field="revision", code="revision_not_found"
            )
    old = card_content.normalise(found[a].content)
    new = card_content.normalise(found[b].content)
    changes = []
    for part in ("model_details", "sections", "metadata"):
        for key in new[part]:
            before, after = old[part].get(key), new[part].get(key)
            if before == after:
                continue
            lines = list(difflib.unified_diff(_lines(before), _lines(after), lineterm="", n=2))[2:]
            changes.append(
                {
                    "field": f"{part}.{key}",
                    "title": card_content.TITLES.get(key, key.replace("_", " ")),
                    "lines": lines,
                }
            )
    return changes
