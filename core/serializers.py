"""The API edge's shared pieces: strict input, time and user rendering, and the URLs of the
registry's objects (which every app links to)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework import serializers

from core.edge import instant
from core.errors import ValidationFailed

SERVER_OWNED = frozenset(
    {
        "id",
        "version",
        "stage",
        "stage_changed_at",
        "sha256",
        "storage_key",
        "size",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
        "deleted_at",
        "deleted_by",
        "last_version_number",
        "format",
        "deployed_by",
        "deployed_at",
        "retired_at",
        "retired_by",
        "aliases",
        "artifacts",
        "latest_versions",
        "latest_version",
    }
)


class StrictInput(serializers.Serializer[Any]):
    """Refuses unknown keys and server-owned fields, and non-object bodies."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationFailed("The body must be a JSON object.", code="invalid_payload")
        owned = {
            k: ["Set by the server; it cannot be written."]
            for k in data
            if k not in self.fields and k in SERVER_OWNED
        }
        if owned:
            raise ValidationFailed(
                f"{', '.join(owned)} cannot be written.", code="read_only_field", fields=owned
            )
        unknown = {k: ["Unknown field."] for k in data if k not in self.fields}
        if unknown:
            raise ValidationFailed(
                f"Unknown field: {', '.join(unknown)}.", code="unknown_field", fields=unknown
            )
        return super().to_internal_value(data)

    def create(self, validated_data: Any) -> Any:  # pragma: no cover - never saves
        raise NotImplementedError

    def update(self, instance: Any, validated_data: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


EXAMPLE_TIME = "2026-03-01T12:00:00Z"


class AwareDateTimeField(serializers.DateTimeField):
    """A time in a request body, read by the rule the API's query filters use (core.edge
    `instant`): ISO 8601 with its time zone, within the years 1 to 9999 in UTC, returned in
    UTC. A time without an offset is refused, not taken as UTC: instant's ValidationFailed
    leaves as it is (400 validation_failed naming the field, in the same words as a query's
    refusal) rather than as a DRF error, whose message the handler prefixes with the field."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", f"An ISO 8601 time with its time zone, like {EXAMPLE_TIME}.")
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            value = value.isoformat()
        text = value if isinstance(value, str) else ""  # a number or a list: not a time
        return instant(text, self.field_name or "time", code=ValidationFailed.default_code)


def iso(value: Any) -> str | None:
    if value is None:
        return None
    text: str = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def username(user: User | None) -> str | None:
    return user.get_username() if user is not None else None


# reverse() per row cost more than the row itself (thread-local URLconf lookups on every
# call), so a response reverses the collection URL once and appends the quoted parts, with the
# same quoting reverse() applies. tests/registry/test_models_api.py pins the two together.
_URL_SAFE = "!$&'()*+,;=~:@"


class Links:
    """URLs of registry objects, from one reverse() per response."""

    def __init__(self) -> None:
        self.models = reverse("registry-api:model-list")

    def model(self, name: str) -> str:
        return f"{self.models}{quote(name, safe=_URL_SAFE)}/"

    def version(self, name: str, number: int) -> str:
        return f"{self.model(name)}versions/{number}/"

    def download(self, name: str, number: int, artifact_id: int) -> str:
        return f"{self.version(name, number)}artifacts/{artifact_id}/download/"
