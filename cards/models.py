"""A model card per version, every save a revision, reviewed like a promotion."""

from __future__ import annotations

from django.conf import settings
from django.db import models

USER = settings.AUTH_USER_MODEL


class ModelCard(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        APPROVED = "approved", "Approved"

    version = models.OneToOneField(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="card"
    )
    # Denormalised from the version, so permission filters reach the model in one join.
    registered_model = models.ForeignKey(
        "registry.RegisteredModel", on_delete=models.CASCADE, related_name="cards"
    )
    content = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    revision = models.PositiveIntegerField(default=1, help_text="The current revision number")
    last_edited_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["draft", "in_review", "changes_requested", "approved"]
                ),
                name="card_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"card of {self.version}"


class CardRevision(models.Model):
    card = models.ForeignKey(ModelCard, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    author = models.ForeignKey(USER, null=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["card", "number"], name="card_revision_number_unique")
        ]

    def __str__(self) -> str:
        return f"revision {self.number} of {self.card}"


class CardReview(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REQUEST_CHANGES = "request_changes", "Request changes"

    card = models.ForeignKey(ModelCard, on_delete=models.CASCADE, related_name="reviews")
    revision = models.PositiveIntegerField(help_text="The revision that was reviewed")
    reviewer = models.ForeignKey(USER, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=20, choices=Decision.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.decision} on {self.card} r{self.revision}"
