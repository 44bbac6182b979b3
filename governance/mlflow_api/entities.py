"""Modelgate's rows as MLflow's JSON entities (model_registry.proto): versions as strings,
tags as lists of pairs, stages in MLflow's spelling, times in epoch milliseconds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from registry.models import ModelVersion

STAGE_NAMES: dict[str, str] = {
    ModelVersion.Stage.NONE: "None",
    ModelVersion.Stage.STAGING: "Staging",
    ModelVersion.Stage.PRODUCTION: "Production",
    ModelVersion.Stage.ARCHIVED: "Archived",
}
STAGES_BY_NAME = {v.lower(): k for k, v in STAGE_NAMES.items()}
STATUS_NAMES: dict[str, str] = {
    ModelVersion.Status.READY: "READY",
    ModelVersion.Status.PENDING_REGISTRATION: "PENDING_REGISTRATION",
    ModelVersion.Status.FAILED_REGISTRATION: "FAILED_REGISTRATION",
}


def millis(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value is not None else 0


def _tags(tag_map: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted((tag_map or {}).items())]


def model_version(row: Any) -> dict[str, Any]:
    """A version row from registry.selectors (tag_map, alias_names, created_by_name)."""
    return {
        "name": row.registered_model.name,
        "version": str(row.version),
        "creation_timestamp": millis(row.created_at),
        "last_updated_timestamp": millis(row.updated_at),
        "user_id": row.created_by_name or "",
        "current_stage": STAGE_NAMES.get(row.stage, "None"),
        "description": row.description,
        "source": row.source,
        "run_id": row.run_id,
        "run_link": row.run_link,
        "status": STATUS_NAMES.get(row.status, "FAILED_REGISTRATION"),
        "status_message": row.status_message,
        "tags": _tags(row.tag_map),
        "aliases": sorted(row.alias_names or []),
    }


def registered_model(row: Any, latest: list[Any]) -> dict[str, Any]:
    """A model row from registry.selectors (tag_map, alias_map, created_by_name) with the
    newest version of each stage that has versions."""
    return {
        "name": row.name,
        "creation_timestamp": millis(row.created_at),
        "last_updated_timestamp": millis(row.updated_at),
        "user_id": row.created_by_name or "",
        "description": row.description,
        "latest_versions": [model_version(v) for v in latest],
        "tags": _tags(row.tag_map),
        "aliases": [
            {"alias": name, "version": str(number)}
            for name, number in sorted((row.alias_map or {}).items())
        ],
    }
