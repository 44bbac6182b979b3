"""The lineage graph: FeatureSource → LogicalFeature → Dataset; CodeRef + Datasets →
TrainingRun → ModelVersion(s) → Deployment(s)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.base import TimeStamped

USER = settings.AUTH_USER_MODEL


class FeatureSource(TimeStamped):
    """Where raw features come from: a table, a stream, a file drop, an API."""

    class Kind(models.TextChoices):
        TABLE = "table", "Table"
        STREAM = "stream", "Stream"
        FILE = "file", "File"
        API = "api", "API"
        OTHER = "other", "Other"

    name = models.CharField(max_length=256, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TABLE)
    uri = models.CharField(max_length=1000, blank=True, default="")
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_feature_sources",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LogicalFeature(TimeStamped):
    source = models.ForeignKey(FeatureSource, on_delete=models.PROTECT, related_name="features")
    name = models.CharField(max_length=256)
    dtype = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_logical_features",
    )

    class Meta:
        ordering = ["source_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "name"], name="logical_feature_unique_per_source"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Dataset(TimeStamped):
    name = models.CharField(max_length=256)
    version = models.CharField(max_length=128, default="1")
    uri = models.CharField(max_length=1000, blank=True, default="")
    digest = models.CharField(max_length=128, blank=True, default="")
    description = models.TextField(blank=True, default="")
    features = models.ManyToManyField(LogicalFeature, blank=True, related_name="datasets")
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_datasets"
    )

    class Meta:
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="dataset_unique_name_version")
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class CodeRef(TimeStamped):
    repository = models.CharField(max_length=500)
    commit = models.CharField(max_length=64)
    path = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_code_refs"
    )

    class Meta:
        ordering = ["repository", "commit", "path"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "commit", "path"], name="code_ref_unique")
        ]

    def __str__(self) -> str:
        return f"{self.repository}@{self.commit[:12]}{':' + self.path if self.path else ''}"


class TrainingRun(TimeStamped):
    """A workflow run that trained one or more model versions."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    run_id = models.CharField(max_length=256, unique=True)
    name = models.CharField(max_length=256, blank=True, default="")
    code_ref = models.ForeignKey(
        CodeRef, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    datasets: models.ManyToManyField[Dataset, TrainingRunDataset] = models.ManyToManyField(
        Dataset, through="TrainingRunDataset", blank=True, related_name="training_runs"
    )
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FINISHED)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_training_runs"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True)
                | Q(started_at__isnull=True)
                | Q(ended_at__gte=models.F("started_at")),
                name="training_run_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name or self.run_id


class TrainingRunDataset(models.Model):
    class Role(models.TextChoices):
        TRAINING = "training", "Training"
        VALIDATION = "validation", "Validation"
        TEST = "test", "Test"

    training_run = models.ForeignKey(
        TrainingRun, on_delete=models.CASCADE, related_name="dataset_links"
    )
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="run_links")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TRAINING)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["training_run", "dataset", "role"], name="training_run_dataset_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.training_run_id}:{self.dataset_id} ({self.role})"


class Deployment(models.Model):
    """Where a version serves inference, and since when."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="deployments"
    )
    environment = models.CharField(max_length=64)
    target = models.CharField(max_length=1000)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.ACTIVE, editable=False
    )
    notes = models.TextField(blank=True, default="")
    deployed_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments_made"
    )
    deployed_at = models.DateTimeField(editable=False)
    retired_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments_retired"
    )
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-deployed_at", "-pk"]
        indexes = [models.Index(fields=["version", "status"], name="deployment_version_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="active", retired_at__isnull=True)
                | Q(status="retired", retired_at__isnull=False),
                name="deployment_retired_has_time",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version_id} → {self.environment}:{self.target}"
