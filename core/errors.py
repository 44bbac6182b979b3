"""The project's domain exceptions. Each carries a stable snake_case ``code``.

Edges translate them: the API exception handler (``config/api.py``) to a JSON body with the
status below, pages to a message. Other apps import or subclass these.
"""

from __future__ import annotations

from typing import Self


class DomainError(Exception):
    status_code = 400
    default_code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = dict(fields or {})
        if field:
            self.fields.setdefault(field, []).append(message)
        self.extra = dict(extra or {})
        # Set when the error refuses access to something that exists (an invisible model, a
        # missing permission): the edge records it in the audit log after the rollback.
        self.refusal: dict[str, object] | None = None

    def refusing(
        self,
        registered_model_id: int | None,
        registered_model_name: str,
        wanted: str,
        *,
        action: str = "access.refused",
    ) -> Self:
        """Mark the error as a refusal to be audited by the edge, after the rollback.
        `access.refused` is a missing permission or an invisible model (pages answer 403 or
        404); `gate.refused` is a governance rule saying no to an allowed user (approval
        required, separation of duties, sealed version...), which pages show as a message."""
        self.refusal = {
            "registered_model_id": registered_model_id,
            "registered_model_name": registered_model_name,
            "wanted": wanted,
            "action": action,
        }
        return self

    @property
    def is_access_refusal(self) -> bool:
        return self.refusal is not None and self.refusal.get("action") == "access.refused"


class ValidationFailed(DomainError):
    status_code = 400
    default_code = "validation_failed"


class NotFound(DomainError):
    status_code = 404
    default_code = "not_found"


class Forbidden(DomainError):
    status_code = 403
    default_code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    default_code = "conflict"


class TooLarge(DomainError):
    status_code = 413
    default_code = "too_large"
