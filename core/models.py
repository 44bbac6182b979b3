"""The kernel's tables: the audit log and API tokens, and the bookkeeping every per-model
grant table carries (an app's guardian direct foreign-key tables extend GrantMeta)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

USER = settings.AUTH_USER_MODEL


class GrantMeta(models.Model):
    """Who made a per-model grant, and whether they were an administrator then: only grants
    an administrator made confer approval (core/permissions.py)."""

    granted_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    by_administrator = models.BooleanField(default=False)

    class Meta:
        abstract = True


class AuditEvent(models.Model):
    """Append-only record of a change or a refused access, written in the change's transaction."""

    class Channel(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        WORKER = "worker", "Worker"
        CLI = "cli", "CLI"

    # Position in the hash chain: gapless, assigned under the chain lock (see core.audit).
    sequence = models.PositiveBigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    # No database constraint and no cascade: rows are never updated (PostgreSQL triggers refuse
    # it), so deleting a user keeps their events, with the name in actor_label.
    actor = models.ForeignKey(
        USER,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    actor_label = models.CharField(max_length=150, blank=True, default="")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    request_id = models.CharField(max_length=64, blank=True, default="")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_label = models.CharField(max_length=300, blank=True, default="")
    # Kept as a plain id and name, not a foreign key: purging a model keeps its history.
    registered_model_id = models.BigIntegerField(null=True, blank=True)
    registered_model_name = models.CharField(max_length=256, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "governance_auditevent"  # its name before it moved to core (triggers, grants)
        ordering = ["-sequence"]
        indexes = [
            models.Index(fields=["registered_model_id", "-sequence"], name="audit_model_seq")
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 digest is stored; the secret is shown once."""

    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "governance_apitoken"  # its name before it moved to core
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
