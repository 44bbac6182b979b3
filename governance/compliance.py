"""The compliance report of one model: were the required events recorded, did every
production placement follow an approval, is the production version ready, who approved what."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch

from core.models import AuditEvent
from governance import policies, promotions, readiness
from governance.history import describe
from governance.models import PromotionRequest, Review, StageHistory
from registry.deployments import DEPLOYED_NOT_APPROVED, deployment_findings_bulk
from registry.models import ModelVersion, RegisteredModel


def report(registered_model: RegisteredModel) -> dict[str, Any]:
    findings: list[dict[str, str]] = []
    events = AuditEvent.objects.filter(registered_model_id=registered_model.pk)
    registered = events.filter(action="registered_model.created").order_by("sequence").first()
    if registered is None:
        findings.append({"severity": "error", "message": "No registration event is recorded."})
    approved_at = dict(
        events.filter(
            action="promotion.approved", target_type="governance.promotionrequest"
        ).values_list("target_id", "occurred_at")
    )
    approvals = Review.objects.filter(decision=Review.Decision.APPROVE).select_related("reviewer")
    placements = list(
        StageHistory.objects.filter(
            registered_model=registered_model, kind="stage", name=ModelVersion.Stage.PRODUCTION
        )
        .select_related("version", "started_by", "ended_by", "promotion_request")
        .prefetch_related(
            Prefetch("promotion_request__reviews", queryset=approvals, to_attr="approvals")
        )
        .order_by("started_at", "pk")
    )
    placed = []
    for row in placements:
        entry = describe(row)
        when = approved_at.get(str(row.promotion_request_id))
        if row.origin == StageHistory.Origin.MLFLOW_IMPORT:
            entry["finding"] = "imported from MLflow, not approved in Modelgate"
            findings.append(
                {
                    "severity": "warning",
                    "message": f"Version {row.version.version} entered production on "
                    f"{row.started_at:%Y-%m-%d %H:%M} by import from MLflow (manage.py "
                    "import_mlflow), where it was in production; no approval in Modelgate "
                    "is recorded.",
                }
            )
        elif row.promotion_request_id is None:
            entry["finding"] = "moved directly, without a promotion request"
            findings.append(
                {
                    "severity": "warning",
                    "message": f"Version {row.version.version} "
                    f"entered production on {row.started_at:%Y-%m-%d %H:%M} without "
                    "a promotion request (a no-approval policy was in force or the "
                    "history predates the workflow).",
                }
            )
        elif when is None or when > row.started_at:
            entry["finding"] = "no approval recorded before the promotion"
            findings.append(
                {
                    "severity": "error",
                    "message": f"Version {row.version.version} "
                    f"entered production on {row.started_at:%Y-%m-%d %H:%M} with no "
                    "approval event before it.",
                }
            )
        placed.append(entry)
    current = promotions.current_holder(registered_model, stage=ModelVersion.Stage.PRODUCTION)
    policy = policies.policy_for(registered_model)
    checks = []
    if current is not None:
        checks = [
            {
                "name": c.name,
                "title": c.title,
                "required": c.required,
                "passed": c.passed,
                "message": c.message,
            }
            for c in readiness.evaluate(current, None, policy.required_checks)
        ]
        for c in checks:
            if c["required"] and not c["passed"]:
                findings.append(
                    {
                        "severity": "error",
                        "message": f"The production version "
                        f"{current.version} fails the required check "
                        f"'{c['title']}': {c['message']}",
                    }
                )
    findings.extend(_deployment_findings(registered_model))
    findings.extend(_approver_findings(registered_model))
    decisions = (
        Review.objects.filter(request__registered_model=registered_model)
        .select_related("reviewer", "request", "request__version")
        .order_by("created_at", "pk")
    )
    return {
        "model": registered_model.name,
        "risk_tier": registered_model.risk_tier,
        "compliant": not any(f["severity"] == "error" for f in findings),
        "findings": findings,
        "registered": {"at": registered.occurred_at, "by": registered.actor_label}
        if registered
        else None,
        "production_version": current.version if current else None,
        "production_readiness": checks,
        "production_history": placed,
        "reviews": [
            {
                "request": r.request_id,
                "version": r.request.version.version,
                "target": r.request.target,
                "reviewer": r.reviewer.username if r.reviewer else None,
                "decision": r.decision,
                "comment": r.comment,
                "at": r.created_at,
            }
            for r in decisions
        ],
        "open_requests": PromotionRequest.objects.filter(
            registered_model=registered_model, status__in=PromotionRequest.OPEN
        ).count(),
    }


def _deployment_findings(registered_model: RegisteredModel) -> list[dict[str, str]]:
    """Active deployments in a production environment of versions no longer approved, as the
    deployment check finds them (registry.deployments, the one place the rule is written)."""
    found = deployment_findings_bulk(RegisteredModel.objects.filter(pk=registered_model.pk))
    return [
        {"severity": "error", "message": f.message}
        for f in found[registered_model.pk]
        if f.kind == DEPLOYED_NOT_APPROVED
    ]


def _approver_findings(registered_model: RegisteredModel) -> list[dict[str, str]]:
    """Applied promotions whose approvers would not qualify under today's rules: approval
    right not from a role or an administrator's grant, separation of duties (the requester
    or a supplier of the version's content), or an approval given on other content than
    what was applied (the digest the stage history recorded)."""
    applied = list(
        PromotionRequest.objects.filter(
            registered_model=registered_model, status=PromotionRequest.Status.APPLIED
        )
        .select_related("version", "version__registered_model", "requested_by")
        .prefetch_related("reviews__reviewer")
        .order_by("applied_at", "pk")
    )
    applied_digest = dict(
        StageHistory.objects.filter(promotion_request__in=applied).values_list(
            "promotion_request_id", "content_digest"
        )
    )
    findings = []
    for request in applied:
        barred = promotions.barred_reviewers(request)
        latest = policies.latest_decisions(
            sorted(request.reviews.all(), key=lambda r: (r.created_at, r.pk))
        )
        digest = applied_digest.get(request.pk, "")
        for review in latest.values():
            if review.decision != Review.Decision.APPROVE:
                continue
            why = promotions.approval_flaw(review, request, barred, digest)
            if why:
                who = review.reviewer.username if review.reviewer else "a deleted user"
                findings.append(
                    {
                        "severity": "error",
                        "message": (
                            f"Request #{request.pk} (version {request.version.version} → "
                            f"{request.target}) counted the approval of {who}, who would not "
                            f"qualify: {why}."
                        ),
                    }
                )
    return findings
