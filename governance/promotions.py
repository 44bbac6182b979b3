"""The promotion workflow: request, review, apply, cancel, roll back.

Every write locks the registered model's row first, so requests, reviews and applies on one
model run one after another: two approvals cannot both be "the last one", and two applies
cannot both put a version in production. Anything acting on a request that is no longer
open is refused with 409.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.permissions import AnyUser, Perm
from core.refusals import gate_refusal
from governance import content, notifications, policies, readiness
from governance.models import Policy, PromotionRequest, Review, StageHistory
from registry import validation
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.services.aliases import alias_point
from registry.services.versions import stage_move

MAX_TEXT = 5000
Status = PromotionRequest.Status


def current_holder(
    registered_model: RegisteredModel, *, stage: str = "", alias: str = ""
) -> ModelVersion | None:
    """The version that holds a stage (the newest placed there) or an alias right now."""
    return current_holders([(registered_model, stage, alias)])[0]


def current_holders(
    targets: list[tuple[RegisteredModel, str, str]],
) -> list[ModelVersion | None]:
    """current_holder for each (model, stage, alias), in at most two queries."""
    by_stage: dict[tuple[int, str], ModelVersion] = {}
    stages = {(m.pk, stage) for m, stage, alias in targets if not alias}
    if stages:
        for version in ModelVersion.objects.filter(
            reduce(operator.or_, (Q(registered_model=pk, stage=st) for pk, st in stages)),
            deleted_at__isnull=True,
        ).order_by("-stage_changed_at", "-version"):
            by_stage.setdefault((version.registered_model_id, version.stage), version)
    by_alias: dict[tuple[int, str], ModelVersion] = {}
    names = {(m.pk, alias) for m, _, alias in targets if alias}
    if names:
        for found in Alias.objects.filter(
            reduce(operator.or_, (Q(registered_model=pk, name__iexact=n) for pk, n in names))
        ).select_related("version"):
            by_alias[(found.registered_model_id, found.name.casefold())] = found.version
    return [
        by_alias.get((m.pk, alias.casefold())) if alias else by_stage.get((m.pk, stage))
        for m, stage, alias in targets
    ]


@dataclass
class Evaluation:
    """Where a request stands under the policy in force: what a request page shows."""

    policy: Policy
    needed: int
    admin_needed: bool
    approvers: list[User]
    changes_requested_by: list[User]
    checks: list[readiness.Outcome]
    current: ModelVersion | None
    schema_diff: dict[str, Any] | None
    fast_track: bool = False
    admin_approved: bool = False
    blocking: list[readiness.Outcome] = field(default_factory=list)
    # The version's content digest now; approvals given on another digest, or by reviewers
    # who may not approve it (any more), are listed here and do not count.
    digest: str = ""
    voided: list[Review] = field(default_factory=list)
    ineligible: list[Review] = field(default_factory=list)
    barred: set[int] = field(default_factory=set)  # who may not decide it (requester, authors)

    @property
    def approved(self) -> bool:
        return (
            len(self.approvers) >= self.needed
            and not self.changes_requested_by
            and (self.admin_approved or not self.admin_needed)
        )


def _latest_decisions(promotion_request: PromotionRequest) -> dict[int, Review]:
    return policies.latest_decisions(
        promotion_request.reviews.select_related("reviewer").order_by("created_at", "pk")
    )


def _unchanged_since_production(version: ModelVersion, digest: str) -> bool:
    """The version went to production through an applied request, and its content is what it
    was when it last entered production (the stage history keeps that digest)."""
    last = (
        StageHistory.objects.filter(
            version=version, kind=StageHistory.Kind.STAGE, name=ModelVersion.Stage.PRODUCTION
        )
        .order_by("-started_at", "-pk")
        .values_list("content_digest", flat=True)
        .first()
    )
    return (
        bool(last)
        and last == digest
        and PromotionRequest.objects.filter(
            version=version, target_stage=ModelVersion.Stage.PRODUCTION, status=Status.APPLIED
        ).exists()
    )


@dataclass(frozen=True)
class Preview:
    """What a request for a version into a target faces now: the policy in force, the version
    holding the target, the readiness checks against it and the approvals needed."""

    policy: Policy
    current: ModelVersion | None
    checks: list[readiness.Outcome]
    needed: int


def split_target(target: str) -> tuple[str, str]:
    """A page's one "target" field as (stage, alias): a promotion stage, else an alias name."""
    if target in ModelVersion.PROMOTION_STAGES:
        return target, ""
    return "", target


def preview(version: ModelVersion, *, stage: str = "", alias: str = "") -> Preview:
    return preview_many([(version, stage, alias)])[0]


def preview_many(cases: list[tuple[ModelVersion, str, str]]) -> list[Preview]:
    """preview for each (version, stage, alias), in a fixed number of queries: the policies,
    the targets' holders and the readiness facts are each read once for all."""
    found = policies.policies_for(version.registered_model for version, _, _ in cases)
    holders = current_holders([(v.registered_model, stage, alias) for v, stage, alias in cases])
    policy_of = [found[version.registered_model_id] for version, _, _ in cases]
    checks = readiness.evaluate_many(
        [
            (version, current, policy.required_checks)
            for (version, _, _), current, policy in zip(cases, holders, policy_of, strict=True)
        ]
    )
    return [
        Preview(
            policy=policy,
            current=current,
            checks=outcomes,
            needed=policy.approvals_for(stage or ModelVersion.Stage.PRODUCTION),
        )
        for (_, stage, _), policy, current, outcomes in zip(
            cases, policy_of, holders, checks, strict=True
        )
    ]


def evaluate(promotion_request: PromotionRequest) -> Evaluation:
    now = preview(
        promotion_request.version,
        stage=promotion_request.target_stage,
        alias=promotion_request.target_alias,
    )
    policy, needed, current, checks = now.policy, now.needed, now.current, now.checks
    digest = content.digest(promotion_request.version)
    fast_track = (
        promotion_request.kind == PromotionRequest.Kind.ROLLBACK
        and policy.rollback_fast_track
        and needed > 1
        and _unchanged_since_production(promotion_request.version, digest)
    )
    if fast_track:
        needed = 1
    return Evaluation(
        policy=policy,
        needed=needed,
        admin_needed=policy.admin_approval_required,
        checks=checks,
        current=current,
        fast_track=fast_track,
        schema_diff=readiness.schema_diff(current.signature, promotion_request.version.signature)
        if current is not None and current.pk != promotion_request.version_id
        else None,
        blocking=[c for c in checks if c.blocking],
        digest=digest,
        **_tally(promotion_request, digest),
    )


def _tally(promotion_request: PromotionRequest, digest: str) -> dict[str, Any]:
    """The part of an evaluation that reviews change. An approval counts only if it was
    given on the version's current content digest, by someone who may approve this model's
    promotions now (an eligible approver: core.permissions) and who is neither the
    requester nor a contributor of the version's content. Each reviewer's latest word is
    the one that counts."""
    latest = _latest_decisions(promotion_request)
    barred = barred_reviewers(promotion_request)
    approvers, voided, ineligible = [], [], []
    for review in latest.values():
        if review.decision != Review.Decision.APPROVE:
            continue
        flaw = approval_flaw(review, promotion_request, barred, digest)
        if flaw == OTHER_CONTENT:
            voided.append(review)
        elif flaw:
            ineligible.append(review)
        else:
            approvers.append(review.reviewer)
    return {
        "approvers": approvers,
        "voided": voided,
        "ineligible": ineligible,
        "barred": barred,
        "changes_requested_by": [
            r.reviewer for r in latest.values() if r.decision == Review.Decision.REQUEST_CHANGES
        ],
        "admin_approved": policies.admin_among(approvers, promotion_request.registered_model),
    }


# Who may not decide a request (separation of duties): content.py holds the rule, in this
# form for one request and as `content.barred(user)` for the reviewer's inbox.
barred_reviewers = content.barred_reviewers


OTHER_CONTENT = "approved other content than the version holds"


def approval_flaw(
    review: Review, promotion_request: PromotionRequest, barred: set[int], digest: str
) -> str:
    """Why an approval does not count, or "" if it does: the one rule the tally and the
    compliance report (for applied requests, against the digest that was applied) share."""
    if review.reviewer_id is None or review.reviewer_id in barred:
        return "supplied the version's content or requested it"
    if not permissions.has(
        review.reviewer, Perm.APPROVE_PROMOTION, promotion_request.registered_model
    ):
        return "holds no approval right from a role or an administrator's grant"
    if digest and review.content_digest != digest:
        return OTHER_CONTENT
    return ""


def eligible_reviewers(
    promotion_request: PromotionRequest, evaluation: Evaluation | None = None
) -> list[User]:
    """Who may still decide the request: active holders of the approval right on its model
    (a role, or an administrator's grant), less those barred from it (the requester and
    whoever supplied the version's content) and those whose approval already counts. One
    query, plus the barred set when no evaluation is given."""
    if promotion_request.registered_model.is_deleted:
        return []  # nobody decides a request on a deleted model
    barred = evaluation.barred if evaluation is not None else barred_reviewers(promotion_request)
    counted = {u.pk for u in evaluation.approvers} if evaluation is not None else set()
    return [
        u
        for u in permissions.deciders(Perm.APPROVE_PROMOTION, promotion_request.registered_model)
        if u.pk not in barred and u.pk not in counted
    ]


def review_refusal(
    user: AnyUser, promotion_request: PromotionRequest, evaluation: Evaluation | None = None
) -> str | None:
    """Why `user` may not review this request, or None if they may (for pages to hide the
    buttons; the services enforce the same rules). An evaluation of the request, when the
    caller has one, saves reading who supplied the version's content again. The reviewer's
    inbox (selectors.awaiting_review) applies the same rules to many requests at once."""
    if not permissions.has(user, Perm.APPROVE_PROMOTION, promotion_request.registered_model):
        return "You may not approve promotions of this model."
    if promotion_request.requested_by_id == user.pk:
        return "You requested this promotion; another reviewer must decide it."
    if promotion_request.version.created_by_id == user.pk:
        return (
            f"You created version {promotion_request.version.version}; another reviewer must "
            "decide it."
        )
    barred = evaluation.barred if evaluation is not None else barred_reviewers(promotion_request)
    if user.pk in barred:
        return (
            f"You supplied content of version {promotion_request.version.version} (files, "
            "metadata, metrics or its card); another reviewer must decide it."
        )
    if not promotion_request.is_open or promotion_request.status != Status.PENDING:
        return f"This request is {promotion_request.status}."
    return None


def _locked(promotion_request: PromotionRequest) -> PromotionRequest:
    """Lock the model row, then the request row; return the request as committed."""
    RegisteredModel.objects.select_for_update().get(pk=promotion_request.registered_model_id)
    return (
        PromotionRequest.objects.select_for_update(of=("self",))
        .select_related("registered_model", "version", "version__registered_model", "requested_by")
        .get(pk=promotion_request.pk)
    )


def _not_pending(promotion_request: PromotionRequest, doing: str) -> Conflict:
    return Conflict(
        f"Request #{promotion_request.pk} is {promotion_request.status}; it can no longer be "
        f"{doing}.",
        code="request_not_pending",
        extra={"status": promotion_request.status},
    )


def _text(value: Any, field_name: str, *, required: bool = False) -> str:
    text = validation.text(
        value if value is not None else "", field=field_name, max_length=MAX_TEXT
    ).strip()
    if required and not text:
        raise ValidationFailed("Say why.", field=field_name)
    return text


@transaction.atomic
def promotion_request_create(
    *,
    actor: Actor,
    version: ModelVersion,
    target_stage: str = "",
    target_alias: str = "",
    justification: str = "",
    kind: str = PromotionRequest.Kind.PROMOTION,
) -> PromotionRequest:
    """Ask for `version` to be moved into a stage or an alias. If the policy needs no
    approval, the request is approved and applied at once (and recorded all the same)."""
    registered_model = version.registered_model
    permissions.require(actor.user, Perm.REQUEST_PROMOTION, registered_model)
    if bool(target_stage) == bool(target_alias):
        raise ValidationFailed(
            "Give exactly one of target_stage or target_alias.", field="target_stage"
        )
    if target_stage and target_stage not in ModelVersion.PROMOTION_STAGES:
        raise ValidationFailed("target_stage must be staging or production.", field="target_stage")
    if target_alias:
        target_alias = validation.alias_name(target_alias)
    justification = _text(
        justification, "justification", required=kind == PromotionRequest.Kind.ROLLBACK
    )
    RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    # The version's row too: edits of its content lock it, so none slips in between the
    # digest recorded here and the seal the open request puts on it.
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.is_deleted:
        raise Conflict("A deleted version cannot be promoted.", code="version_deleted")
    if version.status != ModelVersion.Status.READY:
        raise Conflict(
            f"Version {version.version} is {version.status}; only ready versions can be promoted.",
            code="version_not_ready",
        )
    holder = current_holder(registered_model, stage=target_stage, alias=target_alias)
    if (holder is not None and holder.pk == version.pk) or (
        target_stage and version.stage == target_stage
    ):
        raise Conflict(
            f"Version {version.version} is already in {target_stage or target_alias}.",
            code="already_in_target",
        )
    duplicate = PromotionRequest.objects.filter(
        version=version,
        target_stage=target_stage,
        target_alias=target_alias,
        status__in=PromotionRequest.OPEN,
    ).first()
    if duplicate is not None:
        raise Conflict(
            f"Request #{duplicate.pk} for this version and target is still open.",
            code="duplicate_request",
            extra={"request": duplicate.pk},
        )
    now = timezone.now()
    promotion_request = PromotionRequest.objects.create(
        registered_model=registered_model,
        version=version,
        kind=kind,
        target_stage=target_stage,
        target_alias=target_alias,
        justification=justification,
        requested_by=acting_user(actor),
        content_digest=content.digest(version),
        created_at=now,
        updated_at=now,
    )
    audit.record(
        actor=actor,
        action="promotion.requested",
        target=promotion_request,
        registered_model=registered_model,
        details={
            "version": version.version,
            "target": promotion_request.target,
            "kind": kind,
            "justification": justification[:500],
            "content_digest": promotion_request.content_digest,
        },
    )
    evaluation = evaluate(promotion_request)
    if evaluation.needed == 0 and not evaluation.admin_needed:
        if evaluation.blocking:
            raise _checks_failing(evaluation, promotion_request)
        _approve(actor, promotion_request, evaluation, note="the policy needs no approval")
    else:
        notifications.request_waiting(
            promotion_request, eligible_reviewers(promotion_request, evaluation)
        )
    return promotion_request


def _checks_failing(evaluation: Evaluation, promotion_request: PromotionRequest) -> Conflict:
    return _refused_for_checks(
        evaluation.blocking,
        promotion_request.registered_model,
        f"promote to {promotion_request.target}",
    )


def _refused_for_checks(
    blocking: list[readiness.Outcome], registered_model: RegisteredModel, attempt: str
) -> Conflict:
    """409 checks_failing naming the failing required checks, audited as gate.refused."""
    return gate_refusal(
        Conflict(
            "Required readiness checks fail: "
            + "; ".join(f"{c.title}: {c.message}" for c in blocking),
            code="checks_failing",
            extra={"checks": [c.name for c in blocking]},
        ),
        registered_model,
        attempt,
    )


def require_ready(version: ModelVersion, attempt: str, *, stage: str = "", alias: str = "") -> None:
    """A direct move the policy allows without approval still needs the readiness checks it
    requires, as a request needing no approval does (409 checks_failing, audited): a policy
    of zero approvals waives reviewers, not the checks."""
    blocking = [c for c in preview(version, stage=stage, alias=alias).checks if c.blocking]
    if blocking:
        raise _refused_for_checks(blocking, version.registered_model, attempt)


def _approve(
    actor: Actor, promotion_request: PromotionRequest, evaluation: Evaluation, note: str
) -> None:
    now = timezone.now()
    promotion_request.status, promotion_request.decided_at, promotion_request.updated_at = (
        Status.APPROVED,
        now,
        now,
    )
    promotion_request.save(update_fields=["status", "decided_at", "updated_at"])
    audit.record(
        actor=actor,
        action="promotion.approved",
        target=promotion_request,
        registered_model=promotion_request.registered_model,
        details={
            "approvers": [u.username for u in evaluation.approvers],
            "needed": evaluation.needed,
            "note": note,
            "policy": policies.describe(evaluation.policy),
            "content_digest": evaluation.digest,
        },
    )
    notifications.request_approved(promotion_request, applying=evaluation.policy.auto_apply)
    if evaluation.policy.auto_apply:
        _apply(actor, promotion_request, evaluation.policy)


@transaction.atomic
def promotion_request_review(
    *, actor: Actor, promotion_request: PromotionRequest, decision: str, comment: str = ""
) -> PromotionRequest:
    """Approve, reject or request changes. The requester and the version's author may not
    review; a reviewer's latest decision is the one that counts; a request is approved when
    enough distinct reviewers approve, nobody's latest word is "request changes", the
    policy's admin rule holds and every required readiness check passes."""
    registered_model = promotion_request.registered_model
    permissions.require(actor.user, Perm.APPROVE_PROMOTION, registered_model)
    if decision not in Review.Decision.values:
        raise ValidationFailed(
            f"decision must be one of {', '.join(Review.Decision.values)}.", field="decision"
        )
    comment = _text(comment, "comment", required=decision != Review.Decision.APPROVE)
    promotion_request = _locked(promotion_request)
    if promotion_request.status != Status.PENDING:
        raise _not_pending(promotion_request, "reviewed")
    evaluation = evaluate(promotion_request)
    refusal = review_refusal(actor.user, promotion_request, evaluation)
    if refusal is not None:
        raise gate_refusal(
            Forbidden(refusal, code="separation_of_duties"),
            registered_model,
            f"review request #{promotion_request.pk}",
        )
    reviewer = acting_user(actor)
    assert reviewer is not None  # review_refusal lets only an active user through
    latest = _latest_decisions(promotion_request).get(reviewer.pk)
    # The same word again is refused, unless it was an approval the content has since voided.
    if (
        latest is not None
        and latest.decision == decision
        and not (decision == Review.Decision.APPROVE and latest.content_digest != evaluation.digest)
    ):
        raise Conflict(f"You already chose '{decision}' on this request.", code="already_reviewed")
    if decision == Review.Decision.APPROVE and evaluation.blocking:
        raise _checks_failing(evaluation, promotion_request)
    now = timezone.now()
    review = Review.objects.create(
        request=promotion_request,
        reviewer=reviewer,
        decision=decision,
        comment=comment,
        content_digest=evaluation.digest,
        created_at=now,
    )
    audit.record(
        actor=actor,
        action="promotion.reviewed",
        target=promotion_request,
        registered_model=registered_model,
        details={
            "decision": decision,
            "comment": comment[:500],
            "review": review.pk,
            "content_digest": evaluation.digest,
        },
    )
    if decision == Review.Decision.REJECT:
        promotion_request.status, promotion_request.decided_at, promotion_request.updated_at = (
            Status.REJECTED,
            now,
            now,
        )
        promotion_request.save(update_fields=["status", "decided_at", "updated_at"])
        audit.record(
            actor=actor,
            action="promotion.rejected",
            target=promotion_request,
            registered_model=registered_model,
            details={"comment": comment[:500]},
        )
        notifications.request_decided(promotion_request)
        return promotion_request
    # Only the tally changed with this review; the checks were computed above.
    evaluation = replace(evaluation, **_tally(promotion_request, evaluation.digest))
    if decision == Review.Decision.APPROVE and evaluation.approved:
        _approve(actor, promotion_request, evaluation, note="approvals reached")
    else:
        promotion_request.updated_at = now
        promotion_request.save(update_fields=["updated_at"])
        notifications.request_reviewed(promotion_request, review)
    return promotion_request


def may_apply(user: AnyUser, promotion_request: PromotionRequest) -> bool:
    """Whether `user` may apply this request now: it is approved and they may request
    promotions of the model (pages show the button; request_apply enforces the same rule)."""
    return promotion_request.status == Status.APPROVED and permissions.has(
        user, Perm.REQUEST_PROMOTION, promotion_request.registered_model
    )


@transaction.atomic
def promotion_request_apply(
    *, actor: Actor, promotion_request: PromotionRequest
) -> PromotionRequest:
    """Apply an approved request (for policies that do not apply on approval)."""
    registered_model = promotion_request.registered_model
    permissions.require(actor.user, Perm.REQUEST_PROMOTION, registered_model)
    promotion_request = _locked(promotion_request)
    if promotion_request.status != Status.APPROVED:
        if promotion_request.status == Status.PENDING:
            raise Conflict(
                f"Request #{promotion_request.pk} is not approved yet.", code="request_not_approved"
            )
        raise _not_pending(promotion_request, "applied")
    _apply(actor, promotion_request, policies.policy_for(promotion_request.registered_model))
    return promotion_request


def _apply(actor: Actor, promotion_request: PromotionRequest, policy: Policy) -> None:
    """Move the version, archive what it replaces, supersede competing requests, record it.
    The caller holds the model's row lock."""
    evaluation = evaluate(promotion_request)
    if evaluation.blocking:  # something changed since approval (a job failed, a card reopened)
        raise _checks_failing(evaluation, promotion_request)
    _require_unchanged(promotion_request, evaluation)
    registered_model = promotion_request.registered_model
    replaced = evaluation.current
    if promotion_request.target_stage:
        stage_move(
            actor=actor,
            version=promotion_request.version,
            stage=promotion_request.target_stage,
            archive_existing=policy.archive_previous
            and promotion_request.target_stage == ModelVersion.Stage.PRODUCTION,
            promotion_request=promotion_request,
        )
        if promotion_request.target_stage == ModelVersion.Stage.PRODUCTION:
            _move_production_aliases(actor, promotion_request, policy, replaced)
    else:
        alias_point(
            actor=actor,
            registered_model=registered_model,
            name=promotion_request.target_alias,
            version=promotion_request.version,
            promotion_request=promotion_request,
        )
    now = timezone.now()
    promotion_request.status, promotion_request.applied_at, promotion_request.updated_at = (
        Status.APPLIED,
        now,
        now,
    )
    promotion_request.applied_by = acting_user(actor)
    promotion_request.replaced_version = replaced
    promotion_request.save(
        update_fields=["status", "applied_at", "updated_at", "applied_by", "replaced_version"]
    )
    audit.record(
        actor=actor,
        action="promotion.applied",
        target=promotion_request,
        registered_model=registered_model,
        details={
            "version": promotion_request.version.version,
            "target": promotion_request.target,
            "replaced_version": replaced.version if replaced else None,
            "approvers": [u.username for u in evaluation.approvers],
            "content_digest": evaluation.digest,
        },
    )
    competing = list(
        PromotionRequest.objects.select_for_update()
        .filter(
            registered_model=registered_model,
            target_stage=promotion_request.target_stage,
            target_alias=promotion_request.target_alias,
            status__in=PromotionRequest.OPEN,
        )
        .exclude(pk=promotion_request.pk)
    )
    for other in competing:
        other.status, other.updated_at = Status.SUPERSEDED, now
        other.status_message = f"Superseded by request #{promotion_request.pk}."
        other.save(update_fields=["status", "updated_at", "status_message"])
        audit.record(
            actor=actor,
            action="promotion.superseded",
            target=other,
            registered_model=registered_model,
            details={"by": promotion_request.pk},
        )
    notifications.request_applied(promotion_request)


def _move_production_aliases(
    actor: Actor,
    promotion_request: PromotionRequest,
    policy: Policy,
    replaced: ModelVersion | None,
) -> None:
    """The policy's aliases that follow production move to the new version, and the version it
    replaced takes the policy's `previous_alias`: part of the approved promotion, each move
    audited with the request."""
    version = promotion_request.version
    moves = [(name, version) for name in policy.production_aliases]
    if policy.previous_alias and replaced is not None and replaced.pk != version.pk:
        moves.append((policy.previous_alias, replaced))
    for name, target in moves:
        alias_point(
            actor=actor,
            registered_model=promotion_request.registered_model,
            name=name,
            version=target,
            promotion_request=promotion_request,
        )


def _require_unchanged(promotion_request: PromotionRequest, evaluation: Evaluation) -> None:
    """Applying re-checks, under the model's lock, that the approvals still hold for what
    the version contains now (409 content_changed) and still come from eligible reviewers
    in the number the policy asks (409 approvals_insufficient)."""
    if evaluation.needed == 0 and not evaluation.admin_needed:
        if (
            not promotion_request.content_digest
            or promotion_request.content_digest == evaluation.digest
        ):
            return
        code = "content_changed"
    elif evaluation.approved:
        return
    else:
        code = "content_changed" if evaluation.voided else "approvals_insufficient"
    why = (
        f"version {promotion_request.version.version} is not what was approved (content digest now "
        f"{evaluation.digest[:12]}…)"
        if code == "content_changed"
        else "some approvals no longer count (their reviewers may not approve it any more)"
    )
    raise gate_refusal(
        Conflict(
            f"Request #{promotion_request.pk} cannot be applied: {why}; "
            f"{len(evaluation.approvers)} of {evaluation.needed} approvals count. Reviewers must "
            "approve it again.",
            code=code,
            extra={
                "content_digest": evaluation.digest,
                "voided_reviews": [r.pk for r in evaluation.voided],
                "ineligible_reviews": [r.pk for r in evaluation.ineligible],
            },
        ),
        promotion_request.registered_model,
        f"apply request #{promotion_request.pk}",
    )


def content_changed(*, actor: Actor, version: ModelVersion) -> None:
    """Called, in their transaction, by services that change content under the digest of a
    version that may have open requests (its card): approvals given on the old content stop
    counting, and an approved request that no longer has enough goes back to pending. Both
    are recorded."""
    for promotion_request in PromotionRequest.objects.filter(
        version=version, status__in=PromotionRequest.OPEN
    ):
        promotion_request = _locked(promotion_request)
        evaluation = evaluate(promotion_request)
        if not evaluation.voided:
            continue
        reopened = (
            promotion_request.status == Status.APPROVED
            and not evaluation.approved
            and not (evaluation.needed == 0 and not evaluation.admin_needed)
        )
        if reopened:
            promotion_request.status, promotion_request.decided_at = Status.PENDING, None
            promotion_request.updated_at = timezone.now()
            promotion_request.save(update_fields=["status", "decided_at", "updated_at"])
        audit.record(
            actor=actor,
            action="promotion.approvals_voided",
            target=promotion_request,
            registered_model=promotion_request.registered_model,
            details={
                "content_digest": evaluation.digest,
                "voided": [r.reviewer.username if r.reviewer else None for r in evaluation.voided],
                "reopened": reopened,
            },
        )


def _may_withdraw(user: AnyUser, promotion_request: PromotionRequest) -> bool:
    """Who may withdraw a request: its requester, or whoever manages access to the model."""
    return (
        user is not None
        and promotion_request.requested_by_id is not None
        and user.pk == promotion_request.requested_by_id
    ) or permissions.has(user, Perm.MANAGE_ACCESS, promotion_request.registered_model)


def may_cancel(user: AnyUser, promotion_request: PromotionRequest) -> bool:
    """Whether `user` may cancel this request now: it is open, and they requested it or
    manage access to the model (pages show the button; request_cancel enforces the same
    rule: 403 for anyone else, 409 once the request is closed)."""
    return promotion_request.is_open and _may_withdraw(user, promotion_request)


@transaction.atomic
def promotion_request_cancel(
    *, actor: Actor, promotion_request: PromotionRequest, reason: str = ""
) -> PromotionRequest:
    """The requester, or whoever manages access to the model, withdraws an open request."""
    registered_model = promotion_request.registered_model
    permissions.require(actor.user, Perm.VIEW, registered_model)
    if not _may_withdraw(actor.user, promotion_request):
        raise Forbidden(
            "Only the requester or a manager of this model may cancel it.", code="permission_denied"
        )
    reason = _text(reason, "reason")
    promotion_request = _locked(promotion_request)
    if not promotion_request.is_open:
        raise _not_pending(promotion_request, "cancelled")
    now = timezone.now()
    promotion_request.status, promotion_request.decided_at, promotion_request.updated_at = (
        Status.CANCELLED,
        now,
        now,
    )
    promotion_request.status_message = reason[:500]
    promotion_request.save(update_fields=["status", "decided_at", "updated_at", "status_message"])
    audit.record(
        actor=actor,
        action="promotion.cancelled",
        target=promotion_request,
        registered_model=registered_model,
        details={"reason": reason[:500]},
    )
    return promotion_request


def rollback_candidate(registered_model: RegisteredModel) -> ModelVersion:
    """The version that was in production before the current one (still present, ready)."""
    current = current_holder(registered_model, stage=ModelVersion.Stage.PRODUCTION)
    rows = (
        StageHistory.objects.filter(
            registered_model=registered_model,
            kind=StageHistory.Kind.STAGE,
            name=ModelVersion.Stage.PRODUCTION,
            ended_at__isnull=False,
            version__deleted_at__isnull=True,
            version__status=ModelVersion.Status.READY,
        )
        .select_related("version")
        .order_by("-ended_at", "-pk")
    )
    if current is not None:
        rows = rows.exclude(version=current)
    row = rows.first()
    if row is None:
        raise NotFound(
            f"'{registered_model.name}' has no earlier production version to roll back to.",
            code="no_rollback_target",
        )
    return row.version


def promotion_request_rollback(
    *, actor: Actor, registered_model: RegisteredModel, justification: str
) -> PromotionRequest:
    """Request that the previous production version return to production."""
    permissions.require(actor.user, Perm.REQUEST_PROMOTION, registered_model)
    return promotion_request_create(
        actor=actor,
        version=rollback_candidate(registered_model),
        target_stage=ModelVersion.Stage.PRODUCTION,
        justification=justification,
        kind=PromotionRequest.Kind.ROLLBACK,
    )
