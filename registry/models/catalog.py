"""Registered models, their versions, tags, metrics, aliases and artifacts."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from registry.models.base import TimeStamped

USER = settings.AUTH_USER_MODEL


class RegisteredModel(TimeStamped):
    """A named purpose ("credit-risk-classifier"); the unit of permissions."""

    class RiskTier(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True, default="")
    owner = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_registered_models",
    )
    team = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_models"
    )
    risk_tier = models.CharField(
        max_length=16, choices=RiskTier.choices, default=RiskTier.MEDIUM, db_index=True
    )
    # {metric name: "higher" | "lower"}: which way is better, where the name's words do not
    # say it (registry.metric_direction); comparisons and the request page follow it.
    metric_directions = models.JSONField(default=dict, blank=True)
    # Highest version number ever allocated; only grows, so numbers are never reused.
    last_version_number = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_registered_models",
    )
    updated_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="updated_registered_models",
    )
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deleted_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deleted_registered_models",
    )

    class Meta:
        ordering = ["name"]
        permissions = [
            ("request_promotion", "Can request promotion of this model's versions"),
            ("approve_promotion", "Can approve promotions of this model's versions"),
            ("manage_access", "Can manage who may access this model"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(risk_tier__in=["low", "medium", "high", "critical"]),
                name="registered_model_risk_tier_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class RegisteredModelTag(models.Model):
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="tags"
    )
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=100_000, blank=True, default="")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "key"], name="registered_model_tag_unique_key"
            )
        ]
        indexes = [models.Index(fields=["key"], name="rm_tag_key_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ModelVersion(TimeStamped):
    """One trained binary of a registered model, numbered 1, 2, 3… per model."""

    class Stage(models.TextChoices):
        NONE = "none", "None"
        STAGING = "staging", "Staging"
        PRODUCTION = "production", "Production"
        ARCHIVED = "archived", "Archived"

    # The stages a promotion leads to (requests, policies, readiness), most guarded first.
    PROMOTION_STAGES = (Stage.PRODUCTION, Stage.STAGING)

    class Status(models.TextChoices):
        PENDING_REGISTRATION = "pending_registration", "Pending registration"
        READY = "ready", "Ready"
        FAILED_REGISTRATION = "failed_registration", "Failed registration"

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.PositiveIntegerField(editable=False)
    description = models.TextField(blank=True, default="")
    source = models.CharField(max_length=1000, blank=True, default="")
    run_id = models.CharField(max_length=256, blank=True, default="", db_index=True)
    run_link = models.CharField(max_length=1000, blank=True, default="")
    flavor = models.CharField(max_length=64, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(null=True, blank=True)
    input_example = models.JSONField(null=True, blank=True)
    pip_requirements = models.JSONField(default=list, blank=True)
    python_version = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.READY)
    status_message = models.CharField(max_length=1000, blank=True, default="")
    stage = models.CharField(
        max_length=16, choices=Stage.choices, default=Stage.NONE, editable=False
    )
    stage_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    training_run = models.ForeignKey(
        "registry.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="model_versions",
    )
    created_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_model_versions",
    )
    # A client's Idempotency-Key and a digest of its request body: a retry with the same key
    # returns this version; the same key with a different body is refused.
    # NULL (not "") means "no key", so the partial unique constraint below skips those rows.
    idempotency_key = models.CharField(  # noqa: DJ001
        max_length=255, null=True, blank=True, editable=False
    )
    idempotency_fingerprint = models.CharField(
        max_length=64, blank=True, default="", editable=False
    )
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deleted_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deleted_model_versions",
    )

    class Meta:
        ordering = ["registered_model_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "version"], name="model_version_unique_number"
            ),
            models.UniqueConstraint(
                fields=["registered_model", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="model_version_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(version__gte=1), name="model_version_number_positive"
            ),
            models.CheckConstraint(
                condition=Q(stage__in=["none", "staging", "production", "archived"]),
                name="model_version_stage_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending_registration", "ready", "failed_registration"]),
                name="model_version_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["registered_model", "stage"], name="mv_model_stage_idx"),
            models.Index(fields=["stage"], name="mv_stage_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.version}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class ModelVersionTag(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=100_000, blank=True, default="")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="model_version_tag_unique_key")
        ]
        indexes = [models.Index(fields=["key"], name="mv_tag_key_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ModelVersionMetric(models.Model):
    """One named number of a version, optionally for a dataset and split ("test", "holdout")."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=250)
    value = models.FloatField()
    dataset = models.CharField(max_length=250, blank=True, default="")
    split = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["name", "dataset", "split"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "name", "dataset", "split"], name="model_version_metric_unique"
            )
        ]
        # No (name, value) index on purpose: searches test metrics per model or version, and
        # the unique (version, name, …) index answers that; a (name, value) index tempts the
        # planner into scanning every matching metric for each candidate row.

    def __str__(self) -> str:
        scope = "/".join(p for p in (self.dataset, self.split) if p)
        return f"{self.name}{f'[{scope}]' if scope else ''}={self.value}"


class EvaluationResult(models.Model):
    """A structured evaluation of a version that is not one number: a confusion matrix, the
    points of a curve (ROC, precision-recall) or a metric per slice of the data; for a dataset
    and split like metrics. Validated by kind (registry.validation.evaluations) and, like
    metrics, under the version's content digest."""

    class Kind(models.TextChoices):
        CONFUSION_MATRIX = "confusion_matrix", "Confusion matrix"
        CURVE = "curve", "Curve"
        SLICES = "slices", "Metric by slice"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    name = models.CharField(max_length=250)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    dataset = models.CharField(max_length=250, blank=True, default="")
    split = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField()

    class Meta:
        ordering = ["name", "dataset", "split"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "name", "dataset", "split"], name="evaluation_result_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["confusion_matrix", "curve", "slices"]),
                name="evaluation_result_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        scope = "/".join(p for p in (self.dataset, self.split) if p)
        return f"{self.name}{f'[{scope}]' if scope else ''}"


class Alias(TimeStamped):
    """A movable name ("champion") pointing at one version of a registered model."""

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="aliases"
    )
    name = models.CharField(max_length=256)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="updated_aliases"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "aliases"
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "name"], name="alias_unique_name_per_model"
            ),
            # "Prod" and "prod" are one alias: protection compares without case,
            # so names must be unique without case too.
            models.UniqueConstraint(
                Lower("name"), "registered_model", name="alias_unique_name_per_model_ci"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model_id}@{self.name}"


class Artifact(models.Model):
    """A stored file of a version, content-addressed by sha256."""

    class Format(models.TextChoices):
        PICKLE = "pickle", "Pickle"
        JOBLIB = "joblib", "Joblib"
        SKOPS = "skops", "skops"
        ONNX = "onnx", "ONNX"
        TORCHSCRIPT = "torchscript", "TorchScript"
        SAFETENSORS = "safetensors", "safetensors"
        MLFLOW = "mlflow", "MLflow model (zip)"
        BENTOML = "bentoml", "BentoML model (.bentomodel)"
        OTHER = "other", "Other"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="artifacts")
    filename = models.CharField(max_length=255)  # for display and download names only
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    media_type = models.CharField(max_length=255, default="application/octet-stream")
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.OTHER)
    storage_key = models.CharField(max_length=512, editable=False)
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derivatives"
    )
    # Files Modelgate's own jobs wrote (ONNX, bundle): outside the version's content digest,
    # so they may be added to a sealed version; recorded with the job and the digest of the
    # content they were made from.
    derived = models.BooleanField(default=False)
    derived_by_job = models.ForeignKey(
        "registry.PackagingJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outputs",
    )
    input_digest = models.CharField(max_length=64, blank=True, default="")
    # Set by the inspect job: safe, suspicious or unsafe (empty until inspected).
    safety = models.CharField(max_length=16, blank=True, default="")
    # An administrator may trust a file the scan did not clear (audited); workers then load it.
    trusted_at = models.DateTimeField(null=True, blank=True)
    trusted_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_artifacts"
    )
    created_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["version_id", "filename"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "filename"], name="artifact_unique_filename_per_version"
            ),
            models.CheckConstraint(condition=Q(size__gte=0), name="artifact_size_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.sha256[:12]})"
