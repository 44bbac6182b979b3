"""Long work on a version's files, done by Celery workers: one row per job."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.catalog import Artifact, ModelVersion

ACTIVE = ("queued", "running")


class PackagingJob(models.Model):
    class Kind(models.TextChoices):
        INSPECT = "inspect", "Inspect"
        CONVERT_ONNX = "convert_onnx", "Convert to ONNX"
        COMPARE_FORMATS = "compare_formats", "Compare formats"
        INFER_SIGNATURE = "infer_signature", "Infer signature"
        BUNDLE = "bundle", "Bundle"
        TORCHSCRIPT = "torchscript", "TorchScript"
        BENTOML = "bentoml", "BentoML model"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="packaging_jobs"
    )
    artifact = models.ForeignKey(
        Artifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=200, blank=True, default="")
    log = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    input_sha256 = models.CharField(max_length=64, blank=True, default="")
    forced = models.BooleanField(default=False)
    task_id = models.CharField(max_length=64, blank=True, default="")
    # The last sign of life from the worker process running the job (a thread of it writes
    # every JOB_HEARTBEAT_INTERVAL seconds, also while a long step blocks): a running job
    # silent for JOB_HEARTBEAT_TIMEOUT lost its worker and is queued again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # A job that must run after another (a bundle after the ONNX conversion of its input, so
    # it ships that flavor); it is sent to a worker when that job ends.
    waits_for = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="waiting_jobs"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["version", "kind", "input_sha256"], name="job_input")]
        constraints = [
            # One active job per kind and input: a second start while one runs returns it.
            models.UniqueConstraint(
                fields=["version", "kind", "input_sha256"],
                condition=Q(status__in=ACTIVE),
                name="job_one_active",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_max"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.version} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE
