"""API shapes for promotion requests, reviews, policies, history and the audit log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from core.models import AuditEvent
from core.permissions import Perm
from core.serializers import Links, StrictInput, iso, username
from governance.models import Policy, PromotionRequest, Review, StageHistory
from governance.promotions import Evaluation
from registry.models import ModelVersion

# --- Input ----------------------------------------------------------------------------------


class PromotionRequestIn(StrictInput):
    model = serializers.CharField()
    version = serializers.IntegerField(min_value=1)
    target_stage = serializers.ChoiceField(
        choices=[s.value for s in ModelVersion.PROMOTION_STAGES], required=False, default=""
    )
    target_alias = serializers.CharField(required=False, default="", allow_blank=True)
    justification = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )


class ReviewIn(StrictInput):
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    comment = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )


class CancelIn(StrictInput):
    reason = serializers.CharField(required=False, default="", allow_blank=True)


class RollbackIn(StrictInput):
    justification = serializers.CharField(allow_blank=True)


# --- Output ---------------------------------------------------------------------------------


class ReviewOut(serializers.Serializer):
    reviewer = serializers.CharField(allow_null=True)
    decision = serializers.CharField()
    comment = serializers.CharField()
    content_digest = serializers.CharField(
        help_text="The version's content digest the reviewer saw"
    )
    counts = serializers.BooleanField(
        required=False,
        help_text="For approvals: whether it counts now (same digest, eligible reviewer)",
    )
    created_at = serializers.DateTimeField()

    def to_representation(self, obj: Review) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reviewer": username(obj.reviewer),
            "decision": obj.decision,
            "comment": obj.comment,
            "content_digest": obj.content_digest,
            "created_at": iso(obj.created_at),
        }
        evaluation = self.context.get("evaluation")
        if evaluation is not None and obj.decision == Review.Decision.APPROVE:
            out["counts"] = obj.pk not in {
                r.pk for r in (*evaluation.voided, *evaluation.ineligible)
            } and (obj.content_digest == evaluation.digest)
        return out


class PromotionRequestOut(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    kind = serializers.CharField()
    target_stage = serializers.CharField(allow_null=True)
    target_alias = serializers.CharField(allow_null=True)
    justification = serializers.CharField()
    status = serializers.CharField()
    status_message = serializers.CharField()
    requested_by = serializers.CharField(allow_null=True)
    approvals = serializers.IntegerField(required=False)
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    applied_at = serializers.DateTimeField(allow_null=True)
    content_digest = serializers.CharField(
        help_text="The version's content digest when the request was opened"
    )
    url = serializers.CharField()
    version_url = serializers.CharField()

    def to_representation(self, obj: PromotionRequest) -> dict[str, Any]:
        links = self.context.setdefault("links", Links())
        base = self.context.setdefault(
            "requests_url", reverse("governance-api:promotion-request-list")
        )
        out = {
            "id": obj.pk,
            "model": obj.registered_model.name,
            "version": obj.version.version,
            "kind": obj.kind,
            "target_stage": obj.target_stage or None,
            "target_alias": obj.target_alias or None,
            "justification": obj.justification,
            "status": obj.status,
            "status_message": obj.status_message,
            "requested_by": username(obj.requested_by),
            "content_digest": obj.content_digest,
            "created_at": iso(obj.created_at),
            "decided_at": iso(obj.decided_at),
            "applied_at": iso(obj.applied_at),
            "url": f"{base}{obj.pk}/",
            "version_url": links.version(obj.registered_model.name, obj.version.version),
        }
        if hasattr(obj, "approvals"):
            out["approvals"] = obj.approvals
        return out


class PolicyOut(serializers.Serializer):
    scope = serializers.CharField(help_text="'model', or '<tier> risk tier'")
    production_approvals = serializers.IntegerField()
    staging_approvals = serializers.IntegerField()
    admin_approval_required = serializers.BooleanField()
    required_checks = serializers.ListField(child=serializers.CharField())
    archive_previous = serializers.BooleanField()
    auto_apply = serializers.BooleanField()
    rollback_fast_track = serializers.BooleanField()
    protected_aliases = serializers.ListField(child=serializers.CharField())
    production_aliases = serializers.ListField(
        child=serializers.CharField(), help_text="Aliases that follow a version into production"
    )
    previous_alias = serializers.CharField(
        help_text="Alias the replaced production version takes; empty for none"
    )
    card_required_sections = serializers.ListField(child=serializers.CharField())

    def to_representation(self, obj: Policy) -> dict[str, Any]:
        return policy_data(obj)


class CheckOut(serializers.Serializer):
    """A readiness check's outcome for one version."""

    name = serializers.CharField()
    title = serializers.CharField()
    # The metaclass takes declared fields out of the class, so this output field leaves
    # Field.required alone (the stubs see the class attribute).
    required = serializers.BooleanField(  # type: ignore[assignment]
        help_text="Required by the policy in force"
    )
    passed = serializers.BooleanField()
    message = serializers.CharField()


class EvaluatedCheckOut(CheckOut):
    details = serializers.DictField(help_text="What the check found; depends on the check")
    blocking = serializers.BooleanField(help_text="Required and not passed")


class SignatureChangeOut(serializers.Serializer):
    """One input whose type, shape or dtype changed ("from" is a Python keyword)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "name": serializers.CharField(),
            "field": serializers.CharField(help_text="type, shape or dtype"),
            "from": serializers.JSONField(allow_null=True),
            "to": serializers.JSONField(allow_null=True),
        }


class SchemaDiffOut(serializers.Serializer):
    removed = serializers.ListField(child=serializers.CharField())
    added = serializers.ListField(child=serializers.CharField())
    added_required = serializers.ListField(child=serializers.CharField())
    changed = SignatureChangeOut(many=True)


class EvaluationOut(serializers.Serializer):
    """Where a request stands under the policy in force, computed now."""

    policy = PolicyOut()
    approvals_needed = serializers.IntegerField()
    admin_approval_needed = serializers.BooleanField()
    admin_approved = serializers.BooleanField()
    fast_track = serializers.BooleanField()
    approved_by = serializers.ListField(child=serializers.CharField())
    content_digest = serializers.CharField(help_text="The version's content digest now")
    voided_approvals = serializers.ListField(
        child=serializers.CharField(allow_null=True),
        help_text="Approvers whose approval was given on other content",
    )
    ineligible_approvals = serializers.ListField(
        child=serializers.CharField(allow_null=True),
        help_text="Approvers who may not (or no longer) approve this version",
    )
    changes_requested_by = serializers.ListField(child=serializers.CharField())
    ready_to_approve = serializers.BooleanField()
    checks = EvaluatedCheckOut(many=True)
    current_version = serializers.IntegerField(
        allow_null=True, help_text="The version holding the target now"
    )
    schema_diff = SchemaDiffOut(
        allow_null=True, help_text="Inputs changed against the current version, if another"
    )

    def to_representation(self, evaluation: Evaluation) -> dict[str, Any]:
        return evaluation_data(evaluation)


def evaluation_data(evaluation: Evaluation) -> dict[str, Any]:
    current = evaluation.current
    return {
        "policy": policy_data(evaluation.policy),
        "approvals_needed": evaluation.needed,
        "admin_approval_needed": evaluation.admin_needed,
        "admin_approved": evaluation.admin_approved,
        "fast_track": evaluation.fast_track,
        "approved_by": [u.username for u in evaluation.approvers],
        "content_digest": evaluation.digest,
        "voided_approvals": [username(r.reviewer) for r in evaluation.voided],
        "ineligible_approvals": [username(r.reviewer) for r in evaluation.ineligible],
        "changes_requested_by": [u.username for u in evaluation.changes_requested_by],
        "ready_to_approve": not evaluation.blocking,
        "checks": [{**asdict(c), "blocking": c.blocking} for c in evaluation.checks],
        "current_version": current.version if current is not None else None,
        "schema_diff": evaluation.schema_diff,
    }


class PromotionRequestDetailOut(PromotionRequestOut):
    reviews = ReviewOut(many=True)
    evaluation = EvaluationOut(help_text="Policy, approvals and readiness checks, computed now")
    you_may_review = serializers.BooleanField()
    why_not = serializers.CharField(allow_null=True)
    replaced_version = serializers.IntegerField(allow_null=True)
    applied_by = serializers.CharField(allow_null=True)

    def to_representation(self, obj: PromotionRequest) -> dict[str, Any]:
        out = super().to_representation(obj)
        refusal = self.context["refusal"]
        evaluation = self.context["evaluation"]
        out.update(
            reviews=[
                ReviewOut(r, context={"evaluation": evaluation}).data
                for r in obj.reviews.select_related("reviewer")
            ],
            evaluation=evaluation_data(evaluation),
            you_may_review=refusal is None,
            why_not=refusal,
            replaced_version=obj.replaced_version.version if obj.replaced_version else None,
            applied_by=username(obj.applied_by),
        )
        return out


def policy_data(policy: Policy) -> dict[str, Any]:
    return {
        "scope": "model" if policy.registered_model_id else f"{policy.risk_tier} risk tier",
        "production_approvals": policy.production_approvals,
        "staging_approvals": policy.staging_approvals,
        "admin_approval_required": policy.admin_approval_required,
        "required_checks": list(policy.required_checks),
        "archive_previous": policy.archive_previous,
        "auto_apply": policy.auto_apply,
        "rollback_fast_track": policy.rollback_fast_track,
        "protected_aliases": list(policy.protected_aliases),
        "production_aliases": list(policy.production_aliases),
        "previous_alias": policy.previous_alias,
        "card_required_sections": list(policy.card_required_sections),
    }


# --- History, compliance, permissions -------------------------------------------------------


class ApprovalOut(serializers.Serializer):
    user = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()


class PlacementOut(serializers.Serializer):
    """A version's time in a stage or under an alias (governance.history.describe)."""

    kind = serializers.CharField(help_text="stage or alias")
    name = serializers.CharField(help_text="The stage or alias name")
    version = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    started_by = serializers.CharField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    ended_by = serializers.CharField(allow_null=True)
    promotion_request = serializers.IntegerField(allow_null=True)
    content_digest = serializers.CharField()
    origin = serializers.ChoiceField(
        choices=StageHistory.Origin.choices,
        help_text="modelgate: placed in Modelgate (see approved_by); mlflow_import: copied "
        "from MLflow by manage.py import_mlflow, never an approval",
    )
    approved_by = ApprovalOut(many=True)


class HistoryTimelineOut(serializers.Serializer):
    model = serializers.CharField()
    timeline = PlacementOut(many=True, help_text="Newest first")


class HistoryAtOut(serializers.Serializer):
    at = serializers.DateTimeField()
    stages = serializers.DictField(
        child=PlacementOut(many=True), help_text="Who held each stage at that instant"
    )
    aliases = serializers.DictField(
        child=PlacementOut(), help_text="Which version each alias named at that instant"
    )


HistoryOut = PolymorphicProxySerializer(
    component_name="ModelHistory",
    serializers=[HistoryTimelineOut, HistoryAtOut],
    resource_type_field_name=None,
    many=False,
)


class FindingOut(serializers.Serializer):
    severity = serializers.CharField(help_text="error or warning")
    message = serializers.CharField()


class RegisteredOut(serializers.Serializer):
    at = serializers.DateTimeField()
    by = serializers.CharField()


class ProductionPlacementOut(PlacementOut):
    finding = serializers.CharField(
        required=False, help_text="Present when the placement was not approved as required"
    )


class ComplianceReviewOut(serializers.Serializer):
    request = serializers.IntegerField()
    version = serializers.IntegerField()
    target = serializers.CharField(help_text="A stage, or alias 'name'")
    reviewer = serializers.CharField(allow_null=True)
    decision = serializers.CharField()
    comment = serializers.CharField()
    at = serializers.DateTimeField()


class ComplianceOut(serializers.Serializer):
    """The compliance report of one model (governance.compliance.report)."""

    model = serializers.CharField()
    risk_tier = serializers.CharField()
    compliant = serializers.BooleanField(help_text="No finding of severity error")
    findings = FindingOut(many=True)
    registered = RegisteredOut(allow_null=True)
    production_version = serializers.IntegerField(allow_null=True)
    production_readiness = CheckOut(many=True)
    production_history = ProductionPlacementOut(many=True)
    reviews = ComplianceReviewOut(many=True)
    open_requests = serializers.IntegerField()


class PermissionsOut(serializers.Serializer):
    """One flag per permission (core.permissions.Perm)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {p.name.lower(): serializers.BooleanField() for p in Perm}


class MyPermissionsOut(serializers.Serializer):
    model = serializers.CharField()
    permissions = PermissionsOut()


class AuditEventOut(serializers.Serializer):
    sequence = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = serializers.CharField()
    channel = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    target_label = serializers.CharField()
    model = serializers.CharField(allow_null=True)
    details = serializers.JSONField()
    request_id = serializers.CharField()
    client_address = serializers.CharField(allow_null=True)
    prev_hash = serializers.CharField()
    hash = serializers.CharField()

    def to_representation(self, obj: AuditEvent) -> dict[str, Any]:
        return audit_event_data(obj)


AUDIT_COLUMNS = (
    "sequence",
    "occurred_at",
    "actor",
    "channel",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "model",
    "details",
    "request_id",
    "client_address",
    "prev_hash",
    "hash",
)


def audit_event_data(obj: AuditEvent) -> dict[str, Any]:
    return {
        "sequence": obj.sequence,
        "occurred_at": iso(obj.occurred_at),
        "actor": obj.actor_label,
        "channel": obj.channel,
        "action": obj.action,
        "target_type": obj.target_type,
        "target_id": obj.target_id,
        "target_label": obj.target_label,
        "model": obj.registered_model_name or None,
        "details": obj.details,
        "request_id": obj.request_id,
        "client_address": obj.client_address,
        "prev_hash": obj.prev_hash,
        "hash": obj.hash,
    }
