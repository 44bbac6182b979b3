"""Lineage records: feature sources, logical features, datasets, code refs, training runs,
deployments. Recording a catalogue entry needs the matching global `add_*` permission (data
scientists and up); reading one follows the versions it leads to
(core.permissions.visible_lineage), so an entry may link only entries its author can see.
Deployments belong to a version and follow its model's permissions; in a production
environment only an approved version may be recorded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Conflict, ValidationFailed
from core.permissions import Perm
from core.refusals import gate_refusal
from registry import validation
from registry.governed import governor
from registry.models import (
    Alias,
    CodeRef,
    Dataset,
    Deployment,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    TrainingRun,
    TrainingRunDataset,
)
from registry.services.common import insert_or_conflict, version_locked


def _choice(value: str, choices: list[str], field: str) -> str:
    if value not in choices:
        raise ValidationFailed(f"Must be one of {', '.join(choices)}.", field=field)
    return value


def _require_visible(
    actor: Actor, queryset: QuerySet[Any], records: Iterable[Model], field: str, what: str
) -> None:
    """Linking a record makes it readable by whoever sees the new one: refuse records the
    author may not see (through the gate, or as their own recording, which leads to no
    version yet), answered like missing ones (one query; none without records)."""
    wanted = {record.pk for record in records}
    if not wanted:
        return
    seen = set(linkable(actor, queryset.filter(pk__in=wanted)).values_list("pk", flat=True))
    missing = sorted(wanted - seen)
    if missing:
        raise ValidationFailed(f"{what} {missing[0]} not found.", field=field)


def linkable(actor: Actor, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """The lineage records the actor may link to a new one: those the gate lets them see, and
    those they recorded themselves (a new record leads to no version yet, so without a role's
    view grant its author could not link it to their own version)."""
    user = actor.user
    mine = queryset.filter(created_by=user) if user is not None and user.is_authenticated else None
    seen = permissions.visible_lineage(user, queryset)
    return seen if mine is None else seen | mine


def is_production_environment(environment: str) -> bool:
    """Whether `environment` is one of settings.PRODUCTION_ENVIRONMENTS: exact names, compared
    without case or surrounding blanks."""
    wanted = {name.strip().casefold() for name in settings.PRODUCTION_ENVIRONMENTS}
    return environment.strip().casefold() in wanted


@transaction.atomic
def feature_source_create(
    *, actor: Actor, name: str, kind: str = "table", uri: str = "", description: str = ""
) -> FeatureSource:
    permissions.require_global(actor.user, "add_featuresource", "record feature sources")
    name = validation.name(name)
    source = insert_or_conflict(
        lambda: FeatureSource.objects.create(
            name=name,
            kind=_choice(kind, FeatureSource.Kind.values, "kind"),
            uri=validation.text(uri, field="uri", max_length=1000),
            description=validation.text(description, field="description"),
            created_by=acting_user(actor),
        ),
        f"A feature source named '{name}' already exists.",
        "feature_source_exists",
    )
    audit.record(
        actor=actor,
        action="feature_source.created",
        target=source,
        details={"name": name, "kind": kind},
    )
    return source


@transaction.atomic
def logical_feature_create(
    *, actor: Actor, source: FeatureSource, name: str, dtype: str = "", description: str = ""
) -> LogicalFeature:
    permissions.require_global(actor.user, "add_logicalfeature", "record features")
    _require_visible(actor, FeatureSource.objects.all(), [source], "source", "Feature source")
    name = validation.name(name)
    feature = insert_or_conflict(
        lambda: LogicalFeature.objects.create(
            source=source,
            name=name,
            dtype=validation.text(dtype, field="dtype", max_length=64),
            description=validation.text(description, field="description"),
            created_by=acting_user(actor),
        ),
        f"Source '{source.name}' already has a feature named '{name}'.",
        "feature_exists",
    )
    audit.record(
        actor=actor,
        action="feature.created",
        target=feature,
        details={"source": source.name, "name": name},
    )
    return feature


@transaction.atomic
def dataset_create(
    *,
    actor: Actor,
    name: str,
    version: str = "1",
    uri: str = "",
    digest: str = "",
    description: str = "",
    features: list[LogicalFeature] | None = None,
) -> Dataset:
    permissions.require_global(actor.user, "add_dataset", "record datasets")
    _require_visible(actor, LogicalFeature.objects.all(), features or [], "features", "Feature")
    name = validation.name(name)
    version = validation.text(version, field="version", max_length=128)
    dataset = insert_or_conflict(
        lambda: Dataset.objects.create(
            name=name,
            version=version,
            uri=validation.text(uri, field="uri", max_length=1000),
            digest=validation.text(digest, field="digest", max_length=128),
            description=validation.text(description, field="description"),
            created_by=acting_user(actor),
        ),
        f"Dataset '{name}' version '{version}' already exists.",
        "dataset_exists",
    )
    if features:
        dataset.features.set(features)
    audit.record(
        actor=actor,
        action="dataset.created",
        target=dataset,
        details={
            "name": name,
            "version": version,
            "digest": dataset.digest,
            "features": [f.pk for f in features or []],
        },
    )
    return dataset


@transaction.atomic
def code_ref_create(*, actor: Actor, repository: str, commit: str, path: str = "") -> CodeRef:
    permissions.require_global(actor.user, "add_coderef", "record code references")
    ref = insert_or_conflict(
        lambda: CodeRef.objects.create(
            repository=validation.text(repository, field="repository", max_length=500),
            commit=validation.text(commit, field="commit", max_length=64),
            path=validation.text(path, field="path", max_length=500),
            created_by=acting_user(actor),
        ),
        "That code reference already exists.",
        "code_ref_exists",
    )
    audit.record(
        actor=actor,
        action="code_ref.created",
        target=ref,
        details={"repository": repository, "commit": commit, "path": path},
    )
    return ref


@transaction.atomic
def training_run_create(
    *,
    actor: Actor,
    run_id: str,
    name: str = "",
    code_ref: CodeRef | None = None,
    datasets: list[tuple[Dataset, str]] | None = None,
    params: dict[str, Any] | None = None,
    status: str = "finished",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> TrainingRun:
    permissions.require_global(actor.user, "add_trainingrun", "record training runs")
    run_id = validation.text(run_id, field="run_id", max_length=256)
    if not run_id:
        raise ValidationFailed("run_id is required.", field="run_id")
    if started_at and ended_at and ended_at < started_at:
        raise ValidationFailed("A run cannot end before it starts.", field="ended_at")
    _require_visible(
        actor, CodeRef.objects.all(), [code_ref] if code_ref else [], "code_ref", "Code reference"
    )
    _require_visible(
        actor, Dataset.objects.all(), [d for d, _ in datasets or []], "datasets", "Dataset"
    )
    run = insert_or_conflict(
        lambda: TrainingRun.objects.create(
            run_id=run_id,
            name=validation.text(name, field="name", max_length=256),
            code_ref=code_ref,
            params=validation.params(params or {}),
            status=_choice(status, TrainingRun.Status.values, "status"),
            started_at=started_at,
            ended_at=ended_at,
            created_by=acting_user(actor),
        ),
        f"A training run '{run_id}' already exists.",
        "training_run_exists",
    )
    links = []
    for dataset, role in datasets or []:
        links.append(
            TrainingRunDataset(
                training_run=run,
                dataset=dataset,
                role=_choice(role, TrainingRunDataset.Role.values, "datasets"),
            )
        )
    if len({(link.dataset_id, link.role) for link in links}) != len(links):
        raise ValidationFailed("A dataset is listed twice with the same role.", field="datasets")
    TrainingRunDataset.objects.bulk_create(links)
    audit.record(
        actor=actor,
        action="training_run.created",
        target=run,
        details={
            "run_id": run_id,
            "code_ref": code_ref.pk if code_ref else None,
            "datasets": [[link.dataset_id, link.role] for link in links],
        },
    )
    return run


@transaction.atomic
def deployment_create(
    *, actor: Actor, version: ModelVersion, environment: str, target: str, notes: str = ""
) -> Deployment:
    """Record that `version` now serves at `target` in `environment`. In a production
    environment the version must be approved (in production or holding a protected alias);
    otherwise a 409 `not_approved`, audited as `gate.refused` by the edge."""
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    version = version_locked(version)
    if version.is_deleted:
        raise Conflict("A deleted version cannot be deployed.", code="version_deleted")
    environment = validation.environment_name(environment)
    target = validation.text(target, field="target", max_length=1000)
    if not environment or not target:
        raise ValidationFailed(
            "Environment and target are required.",
            fields={"environment": ["Required."]} if not environment else {"target": ["Required."]},
        )
    if is_production_environment(environment):
        registered_model = version.registered_model
        # The version row lock keeps its stage still; locking its alias rows keeps a protected
        # alias from moving away before this record commits.
        aliases = (
            Alias.objects.select_for_update().filter(version=version).values_list("name", flat=True)
        )
        if not governor().approved_for_production(version, aliases):
            raise gate_refusal(
                Conflict(
                    f"Version {version.version} of '{registered_model.name}' is neither in "
                    f"production nor holding a protected alias, so it cannot be deployed to "
                    f"'{environment}'. Promote it first.",
                    code="not_approved",
                ),
                registered_model,
                "deploy",
            )
    deployment = Deployment.objects.create(
        version=version,
        environment=environment,
        target=target,
        notes=validation.text(notes, field="notes"),
        deployed_by=acting_user(actor),
        deployed_at=timezone.now(),
    )
    audit.record(
        actor=actor,
        action="deployment.created",
        target=deployment,
        registered_model=version.registered_model,
        details={"version": version.version, "environment": environment, "target": target},
    )
    return deployment


@transaction.atomic
def deployment_retire(*, actor: Actor, deployment: Deployment) -> Deployment:
    registered_model = deployment.version.registered_model
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    updated = Deployment.objects.filter(pk=deployment.pk, status=Deployment.Status.ACTIVE).update(
        status=Deployment.Status.RETIRED, retired_at=timezone.now(), retired_by=acting_user(actor)
    )
    if not updated:
        raise Conflict("This deployment is already retired.", code="deployment_retired")
    deployment.refresh_from_db()
    audit.record(
        actor=actor,
        action="deployment.retired",
        target=deployment,
        registered_model=registered_model,
        details={"version": deployment.version.version, "environment": deployment.environment},
    )
    return deployment
