"""Per-model grants (guardian's direct foreign-key tables), policies, promotion requests and
reviews, stage history, webhooks and single sign-on mappings. Audit events and API tokens
are the kernel's (core.models)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from core.models import GrantMeta
from registry.models import ModelVersion, RegisteredModel

USER = settings.AUTH_USER_MODEL


class RegisteredModelUserPermission(UserObjectPermissionBase, GrantMeta):
    content_object = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="user_grants"
    )

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "per-model user permission"

    def __str__(self) -> str:
        return f"{self.user} may {self.permission.codename} on {self.content_object}"


class RegisteredModelGroupPermission(GroupObjectPermissionBase, GrantMeta):
    content_object = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="group_grants"
    )

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "per-model group permission"

    def __str__(self) -> str:
        return f"group {self.group} may {self.permission.codename} on {self.content_object}"


class Policy(models.Model):
    """How promotions of a model are reviewed. One row per risk tier, and optionally one per
    model that overrides its tier's row entirely."""

    risk_tier = models.CharField(
        max_length=16, choices=RegisteredModel.RiskTier.choices, null=True, blank=True, unique=True
    )
    registered_model = models.OneToOneField(
        RegisteredModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="policy_override",
    )
    production_approvals = models.PositiveSmallIntegerField(
        default=1,
        help_text="Distinct approvals to reach production or a protected alias. "
        "0 lets holders of 'request promotion' move versions directly.",
    )
    staging_approvals = models.PositiveSmallIntegerField(
        default=1, help_text="Distinct approvals to reach staging (0: direct moves allowed)."
    )
    admin_approval_required = models.BooleanField(
        default=False,
        help_text="One of the approvals must come from a user who manages "
        "access to the model (an administrator).",
    )
    required_checks = models.JSONField(
        default=list, blank=True, help_text="Names of readiness checks that must pass."
    )
    archive_previous = models.BooleanField(
        default=True, help_text="Archive the version that was in the target stage."
    )
    auto_apply = models.BooleanField(
        default=True,
        help_text="Apply a request as soon as it is approved; otherwise the "
        "requester (or CI) applies it.",
    )
    rollback_fast_track = models.BooleanField(
        default=True,
        help_text="A rollback to a version approved for production before needs only one approval.",
    )
    protected_aliases = models.JSONField(
        default=list,
        blank=True,
        help_text="Aliases that move only through a promotion request, like production.",
    )
    production_aliases = models.JSONField(
        default=list,
        blank=True,
        help_text="Aliases that move to a version when an approved request puts it in "
        "production (for example champion), audited with the request.",
    )
    previous_alias = models.CharField(
        max_length=256,
        blank=True,
        default="",
        help_text="Alias given to the version production held before (for example previous); "
        "blank: none.",
    )
    card_required_sections = models.JSONField(
        default=list,
        blank=True,
        help_text="Model card sections that must be written before "
        "a card can be submitted for review.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        ordering = ["risk_tier", "registered_model__name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(risk_tier__isnull=False, registered_model__isnull=True)
                    | models.Q(risk_tier__isnull=True, registered_model__isnull=False)
                ),
                name="policy_for_tier_xor_model",
            )
        ]

    def __str__(self) -> str:
        if self.registered_model_id:
            return f"policy for model {self.registered_model}"
        return f"{self.risk_tier} risk policy"

    def approvals_for(self, target_stage: str) -> int:
        staging = target_stage == ModelVersion.Stage.STAGING
        return self.staging_approvals if staging else self.production_approvals


class PromotionRequest(models.Model):
    """A request to move a version into staging, production or a protected alias."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        APPLIED = "applied", "Applied"
        SUPERSEDED = "superseded", "Superseded"

    class Kind(models.TextChoices):
        PROMOTION = "promotion", "Promotion"
        ROLLBACK = "rollback", "Rollback"

    OPEN = (Status.PENDING, Status.APPROVED)

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="promotion_requests"
    )
    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="promotion_requests"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROMOTION)
    target_stage = models.CharField(max_length=16, blank=True, default="")
    target_alias = models.CharField(max_length=256, blank=True, default="")
    justification = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_message = models.CharField(max_length=500, blank=True, default="")
    requested_by = models.ForeignKey(
        USER, null=True, on_delete=models.SET_NULL, related_name="promotion_requests"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What the target pointed at when the request was applied (for history and rollback).
    replaced_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The version's content digest when the request was opened (governance/content.py).
    content_digest = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["registered_model", "status"], name="promo_model_status"),
            models.Index(fields=["status", "-created_at"], name="promo_status_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(target_stage__in=["staging", "production"], target_alias="")
                    | models.Q(target_stage="", target_alias__gt="")
                ),
                name="promotion_one_target",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        "pending",
                        "approved",
                        "rejected",
                        "cancelled",
                        "applied",
                        "superseded",
                    ]
                ),
                name="promotion_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"request #{self.pk}: {self.version} → {self.target}"

    @property
    def target(self) -> str:
        return self.target_stage or f"alias '{self.target_alias}'"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class Review(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        REQUEST_CHANGES = "request_changes", "Request changes"

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        USER, null=True, on_delete=models.SET_NULL, related_name="promotion_reviews"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.TextField(blank=True, default="")
    # The content digest the reviewer saw: an approval counts only while it is current.
    content_digest = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(decision__in=["approve", "reject", "request_changes"]),
                name="review_decision_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.decision} on request #{self.request_id}"


class StageHistory(models.Model):
    """Which version held a stage or an alias, from when until when, put there by whom and
    through which request: what answers "what was in production on March 3rd, and who
    approved it?" Kept by the services that move stages and aliases."""

    class Kind(models.TextChoices):
        STAGE = "stage", "Stage"
        ALIAS = "alias", "Alias"

    class Origin(models.TextChoices):
        # Placed by Modelgate: a promotion request, or a direct move its policy allowed.
        MODELGATE = "modelgate", "Modelgate"
        # Copied by manage.py import_mlflow: where MLflow had the version, never an approval.
        MLFLOW_IMPORT = "mlflow_import", "Imported from MLflow"

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="stage_history"
    )
    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="stage_history"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=256)
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(USER, null=True, on_delete=models.SET_NULL, related_name="+")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promotion_request = models.ForeignKey(
        PromotionRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The content digest the version had when it took the stage or alias.
    content_digest = models.CharField(max_length=64, blank=True, default="")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.MODELGATE)

    class Meta:
        verbose_name_plural = "stage history"
        ordering = ["-started_at", "-pk"]
        indexes = [
            models.Index(
                fields=["registered_model", "kind", "name", "started_at"],
                name="stagehist_model_name_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} in {self.kind} {self.name} from {self.started_at:%Y-%m-%d %H:%M}"


class Webhook(models.Model):
    """An outgoing HTTP endpoint told about promotion events (for CI/CD to deploy the newly
    approved version). Global when no model is set."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=1000)
    # Shared with the receiver to check the HMAC-SHA256 signature, so it is stored as given.
    secret = models.CharField(max_length=200)
    registered_model = models.ForeignKey(
        RegisteredModel, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    events = models.JSONField(
        default=list, blank=True, help_text="Event names to send (empty: every promotion event)."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    delivery_id = models.UUIDField(unique=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook} ({self.status})"


class IdpGroupMapping(models.Model):
    """An administrator's decision that members of an identity-provider group hold a Modelgate
    role: one exact value of the groups claim → one role group. Changed only through
    governance/sso.py (audited); read at each single sign-on, where the roles that some
    mapping names follow the claim."""

    idp_group = models.CharField(
        max_length=200,
        help_text="The exact value in the groups claim (case, spaces and "
        "slashes matter; never a prefix).",
    )
    role = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="idp_mappings")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "IdP group mapping"
        ordering = ["idp_group", "role__name"]
        constraints = [
            models.UniqueConstraint(fields=["idp_group", "role"], name="idp_mapping_group_role")
        ]

    def __str__(self) -> str:
        return f"IdP group '{self.idp_group}' → role '{self.role}'"


class ExternalIdentity(models.Model):
    """The OpenID Connect subject (issuer + sub) a Modelgate account signs in as: the stable
    key single sign-on matches on (governance/sso.py), never the e-mail address alone."""

    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    last_login_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "external identities"
        ordering = ["issuer", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="identity_issuer_subject"),
            models.UniqueConstraint(fields=["user", "issuer"], name="identity_user_issuer"),
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.subject} at {self.issuer}"


class MaturitySnapshot(models.Model):
    """One day's maturity scorecard of the organisation (team empty) or of one team, over
    every live model: what the scorecard's trends are drawn from. Written only by
    governance.maturity.snapshots (one row per day and team: a second run the same day
    replaces the day's rows)."""

    taken_on = models.DateField()
    team = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="maturity_snapshots",
    )
    taken_at = models.DateTimeField()
    # scorecard.group_data(): models, score, distribution, domains, metrics (and, on the
    # organisation's row, the models without a team under "no_team")
    data = models.JSONField()

    class Meta:
        ordering = ["-taken_on", "team_id"]
        constraints = [
            models.UniqueConstraint(fields=["taken_on", "team"], name="maturity_snapshot_team_day"),
            # NULLs are distinct in a unique index: the organisation's row needs its own.
            models.UniqueConstraint(
                fields=["taken_on"],
                condition=models.Q(team__isnull=True),
                name="maturity_snapshot_org_day",
            ),
        ]

    def __str__(self) -> str:
        return f"maturity of {self.team or 'the organisation'} on {self.taken_on}"
