"""The registry's read side: querysets already restricted to what the user may see, with a
constant number of queries however many rows they return."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import JSONObject

from core import permissions
from core.aggregates import json_array_of, json_object_of
from core.errors import NotFound, ValidationFailed
from registry import metric_direction, search
from registry.models import (
    Alias,
    Artifact,
    CodeRef,
    Dataset,
    Deployment,
    EvaluationResult,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    ModelVersionMetric,
    ModelVersionTag,
    PackagingJob,
    RegisteredModel,
    RegisteredModelTag,
    TrainingRun,
    TrainingRunDataset,
)

AnyUser = User | AnonymousUser


class ModelColumns(TypedDict):
    """What `_model_details` annotates on each registered model."""

    owner_name: str | None
    team_name: str | None
    created_by_name: str | None
    updated_by_name: str | None
    tag_map: dict[str, str] | None
    alias_map: dict[str, int] | None
    latest_versions: dict[str, int] | None


class VersionColumns(TypedDict):
    """What `_version_queryset` annotates on each version."""

    created_by_name: str | None
    training_run_ref: str | None
    tag_map: dict[str, str] | None
    metric_rows: list[dict[str, Any]] | None
    alias_names: list[str] | None
    artifact_rows: list[dict[str, Any]] | None


if TYPE_CHECKING:  # django_stubs_ext is a development dependency
    from django_stubs_ext import WithAnnotations

    # A registered model and a version as the selectors return them for display.
    ModelRow = WithAnnotations[RegisteredModel, ModelColumns]
    VersionRow = WithAnnotations[ModelVersion, VersionColumns]


@dataclass(frozen=True)
class ModelFilters:
    name_contains: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    stage: str | None = None
    owner: str | None = None
    team: str | None = None
    risk_tier: str | None = None
    q: str | None = None


@dataclass(frozen=True)
class VersionFilters:
    registered_model: RegisteredModel | None = None
    name_contains: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    stage: str | None = None
    status: str | None = None
    owner: str | None = None
    run_id: str | None = None
    q: str | None = None


def registered_model_list(
    *, user: AnyUser, filters: ModelFilters | None = None
) -> QuerySet[ModelRow]:
    filters = filters or ModelFilters()
    qs = permissions.visible(user, _model_details())
    if filters.name_contains:
        qs = qs.filter(name__icontains=filters.name_contains)
    for key, value in filters.tags:
        qs = qs.filter(tags__key=key, tags__value=value)
    if filters.stage:
        qs = qs.filter(
            pk__in=ModelVersion.objects.filter(stage=filters.stage, deleted_at__isnull=True).values(
                "registered_model_id"
            )
        )
    if filters.owner:
        qs = qs.filter(owner__username=filters.owner)
    if filters.team:
        qs = qs.filter(team__name=filters.team)
    if filters.risk_tier:
        qs = qs.filter(risk_tier=filters.risk_tier)
    if filters.q:
        qs = qs.filter(search.to_q(filters.q, target="model"))
    return qs


@functools.cache
def _model_details() -> QuerySet[ModelRow]:
    """What every model row shows, in the row's own query: names as annotations, tags,
    aliases and the newest staging/production versions as JSON objects aggregated by
    correlated subqueries. One query per page, however many rows and children.

    Built once per process and cloned by every caller (querysets are copied on filter, never
    changed in place): resolving these subqueries costs more than running them."""
    live = ModelVersion.objects.filter(
        deleted_at__isnull=True,
        stage__in=[ModelVersion.Stage.STAGING, ModelVersion.Stage.PRODUCTION],
    )
    newest_per_stage = (
        live.filter(registered_model=OuterRef(OuterRef("pk")), stage=OuterRef("stage"))
        .order_by("-version")
        .values("version")[:1]
    )
    return RegisteredModel.objects.annotate(
        owner_name=F("owner__username"),
        team_name=F("team__name"),
        created_by_name=F("created_by__username"),
        updated_by_name=F("updated_by__username"),
        tag_map=json_object_of(
            RegisteredModelTag.objects.all(), parent="registered_model", key="key", value="value"
        ),
        alias_map=json_object_of(
            Alias.objects.all(), parent="registered_model", key="name", value="version__version"
        ),
        latest_versions=json_object_of(
            live.filter(version=Subquery(newest_per_stage)),
            parent="registered_model",
            key="stage",
            value="version",
        ),
    )


# Every request naming a model reads it this way: compiled once per process (core.compiled).
_MODEL_BY_NAME: permissions.VisibleQuery[RegisteredModel] = permissions.VisibleQuery(
    lambda details, gate, name: (
        gate(_model_details() if details else RegisteredModel.objects.all())
        .filter(name=name)
        .order_by("pk")[:1]
    ),
    shows_models=True,
)


@overload
def registered_model_get(
    *, user: AnyUser, name: str, details: Literal[True] = True
) -> ModelRow: ...
@overload
def registered_model_get(*, user: AnyUser, name: str, details: bool) -> RegisteredModel: ...
def registered_model_get(*, user: AnyUser, name: str, details: bool = True) -> RegisteredModel:
    """The visible model named `name`. Without `details`, just the row (for write paths,
    which hand it to a service and re-read what they show)."""
    registered_model = _MODEL_BY_NAME.first(user, details, name=name)
    if registered_model is None:
        error = NotFound(f"Registered model '{name}' not found.", code="registered_model_not_found")
        # Only on this error path: does it exist, invisible to the user? (for the audit log)
        hidden = (
            RegisteredModel.objects.filter(name=name, deleted_at__isnull=True)
            .values_list("pk", flat=True)
            .first()
        )
        if hidden is not None:
            error.refusing(hidden, name, str(permissions.Perm.VIEW))
        raise error
    return registered_model


@functools.cache
def _version_queryset() -> QuerySet[VersionRow]:
    """What every version row shows, in the row's own query (see `_model_details`)."""
    return ModelVersion.objects.select_related("registered_model").annotate(
        created_by_name=F("created_by__username"),
        training_run_ref=F("training_run__run_id"),
        tag_map=json_object_of(
            ModelVersionTag.objects.all(), parent="version", key="key", value="value"
        ),
        metric_rows=json_array_of(
            ModelVersionMetric.objects.all(),
            parent="version",
            value=JSONObject(name="name", value="value", dataset="dataset", split="split"),
        ),
        alias_names=json_array_of(Alias.objects.all(), parent="version", value="name"),
        artifact_rows=json_array_of(
            Artifact.objects.all(),
            parent="version",
            value=JSONObject(
                id="id",
                filename="filename",
                size="size",
                sha256="sha256",
                media_type="media_type",
                format="format",
                derived_from="derived_from_id",
                derived="derived",
                derived_by_job="derived_by_job_id",
                input_digest="input_digest",
                safety="safety",
                created_at="created_at",
            ),
        ),
    )


@dataclass(frozen=True)
class VersionChildren:
    tags: dict[str, str]
    metrics: list[dict[str, Any]]
    aliases: list[str]
    artifacts: list[dict[str, Any]]


def _utc(value: str | None) -> datetime | None:
    """Timestamps inside JSON come back as text (naive UTC on SQLite)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def version_children(version: VersionRow) -> VersionChildren:
    """A version's tags, metrics, aliases and artifacts from its aggregated columns, sorted."""
    metrics = sorted(
        ({**m, "value": float(m["value"])} for m in version.metric_rows or []),
        key=lambda m: (m["name"], m["dataset"], m["split"]),
    )
    artifacts = sorted(
        ({**a, "created_at": _utc(a["created_at"])} for a in version.artifact_rows or []),
        key=lambda a: a["filename"],
    )
    return VersionChildren(
        tags=dict(sorted((version.tag_map or {}).items())),
        metrics=metrics,
        aliases=sorted(version.alias_names or []),
        artifacts=artifacts,
    )


def version_list(*, user: AnyUser, filters: VersionFilters | None = None) -> QuerySet[VersionRow]:
    filters = filters or VersionFilters()
    if filters.registered_model is not None:
        qs = permissions.visible_within(
            user, _version_queryset(), filters.registered_model.pk
        ).filter(registered_model=filters.registered_model)
    else:
        qs = permissions.visible(user, _version_queryset())
    if filters.name_contains:
        qs = qs.filter(registered_model__name__icontains=filters.name_contains)
    for key, value in filters.tags:
        qs = qs.filter(tags__key=key, tags__value=value)
    if filters.stage:
        qs = qs.filter(stage=filters.stage)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.owner:
        qs = qs.filter(registered_model__owner__username=filters.owner)
    if filters.run_id:
        qs = qs.filter(run_id=filters.run_id)
    if filters.q:
        qs = qs.filter(search.to_q(filters.q, target="version"))
    return qs


# A version by its number, as `version_list` shows it: compiled once (core.compiled).
_VERSION_BY_NUMBER: permissions.VisibleQuery[VersionRow] = permissions.VisibleQuery(
    lambda shape, gate, model_id, number: (
        gate(_version_queryset())
        .filter(registered_model_id=model_id, version=number)
        .order_by("pk")[:1]
    ),
    within="model_id",
)


# One model's versions by its name, newest first, as MLflow's search_model_versions answers
# `name='<name>'` (its clients' most common search); compiled once per page size asked.
_VERSIONS_NAMED: permissions.VisibleQuery[VersionRow] = permissions.VisibleQuery(
    lambda limit, gate, name: (
        gate(_version_queryset())
        .filter(registered_model__name=name)
        .order_by("-version", "pk")[:limit]
    )
)


def versions_named(*, user: AnyUser, name: str, limit: int) -> list[VersionRow]:
    """The visible versions of the model named `name`, newest first, at most `limit`. Pass
    one of a few fixed limits: each is compiled and kept."""
    return _VERSIONS_NAMED.rows(user, limit, name=name)


def _newest_of_their_stage(versions: QuerySet[VersionRow]) -> QuerySet[VersionRow]:
    newest = (
        ModelVersion.objects.filter(
            registered_model=OuterRef("registered_model"),
            stage=OuterRef("stage"),
            deleted_at__isnull=True,
        )
        .order_by("-version")
        .values("version")[:1]
    )
    return versions.filter(version=Subquery(newest)).order_by("registered_model_id", "stage")


# One model's newest version per stage (MLflow's latest_versions): compiled once.
_LATEST_OF_ONE: permissions.VisibleQuery[VersionRow] = permissions.VisibleQuery(
    lambda shape, gate, model_id: _newest_of_their_stage(
        gate(_version_queryset()).filter(registered_model_id=model_id)
    ),
    within="model_id",
)


def latest_per_stage(
    *, user: AnyUser, model_pks: list[int], stages: list[str] | None = None
) -> list[VersionRow]:
    """The newest live version of each stage (of `stages`, or every stage that has one) of
    each model, in one query, ordered by model and stage name."""
    if len(model_pks) == 1 and stages is None:
        return _LATEST_OF_ONE.rows(user, model_id=model_pks[0])
    rows = version_list(user=user).filter(registered_model_id__in=model_pks)
    if stages is not None:
        rows = rows.filter(stage__in=stages)
    return list(_newest_of_their_stage(rows))


def version_get(*, user: AnyUser, registered_model: RegisteredModel, number: int) -> VersionRow:
    version = _VERSION_BY_NUMBER.first(user, model_id=registered_model.pk, number=number)
    if version is None:
        raise NotFound(
            f"Version {number} of '{registered_model.name}' not found.", code="version_not_found"
        )
    return version


def version_resolve(
    *,
    user: AnyUser,
    registered_model: RegisteredModel,
    stage: str | None = None,
    alias: str | None = None,
) -> VersionRow:
    """The version a stage or an alias points at right now (the newest, for a stage)."""
    if (stage is None) == (alias is None):
        raise ValidationFailed("Give exactly one of stage or alias.", code="invalid_resolve")
    qs = version_list(user=user, filters=VersionFilters(registered_model=registered_model))
    if alias is not None:
        version = qs.filter(
            aliases__name__iexact=alias, aliases__registered_model=registered_model
        ).first()
        if version is None:
            raise NotFound(
                f"Alias '{alias}' of '{registered_model.name}' not found.", code="alias_not_found"
            )
        return version
    if stage not in ModelVersion.Stage.values:
        raise ValidationFailed(
            f"Stage must be one of {', '.join(ModelVersion.Stage.values)}.", field="stage"
        )
    version = qs.filter(stage=stage).order_by("-version").first()
    if version is None:
        raise NotFound(
            f"'{registered_model.name}' has no version in {stage}.", code="version_not_found"
        )
    return version


MAX_COMPARE = 20


def version_compare(
    *, user: AnyUser, registered_model: RegisteredModel, numbers: list[int]
) -> dict[str, Any]:
    """Params and metrics of two or more versions side by side. Changes are against the first
    version listed (the baseline): the difference as the numbers are written, the percentage
    to two decimals (None when the baseline is zero), and whether that is better or worse by
    the metric's direction (registry.metric_direction; None when nothing decides it)."""
    if not 2 <= len(numbers) <= MAX_COMPARE or len(set(numbers)) != len(numbers):
        raise ValidationFailed(f"Compare 2–{MAX_COMPARE} distinct versions.", field="versions")
    found = {
        v.version: v
        for v in version_list(
            user=user, filters=VersionFilters(registered_model=registered_model)
        ).filter(version__in=numbers)
    }
    missing = [n for n in numbers if n not in found]
    if missing:
        raise NotFound(
            f"Version {missing[0]} of '{registered_model.name}' not found.",
            code="version_not_found",
        )
    versions = [found[n] for n in numbers]
    param_keys = sorted({k for v in versions for k in v.params})
    params = [
        {
            "name": key,
            "values": [v.params.get(key) for v in versions],
            "differs": len({repr(v.params.get(key)) for v in versions}) > 1,
        }
        for key in param_keys
    ]
    names: dict[str, str] = {}
    metric_maps = []
    for v in versions:
        recorded: dict[str, float] = {}
        for m in version_children(v).metrics:
            label = metric_label(m)
            names[label] = m["name"]
            recorded[label] = m["value"]
        metric_maps.append(recorded)
    metrics = []
    for label in sorted(names):
        values = [mm.get(label) for mm in metric_maps]
        facts = metric_direction.described(registered_model.metric_directions, names[label])
        metrics.append(
            {
                "name": label,
                "metric": names[label],
                **facts,
                "values": values,
                "changes": metric_direction.changes(values, facts["direction"]),
                "differs": len(set(values)) > 1,
            }
        )
    return {
        "registered_model": registered_model.name,
        "baseline": numbers[0],
        "versions": versions,
        "params": params,
        "metrics": metrics,
    }


def metric_label(metric: dict[str, Any]) -> str:
    scope = "/".join(p for p in (metric["dataset"], metric["split"]) if p)
    return f"{metric['name']} [{scope}]" if scope else metric["name"]


def evaluation_list(version: ModelVersion) -> QuerySet[EvaluationResult]:
    """A version's structured evaluations; the caller has the version through the gate."""
    return EvaluationResult.objects.filter(version=version).order_by("name", "dataset", "split")


def evaluation_list_many(versions: list[ModelVersion]) -> QuerySet[EvaluationResult]:
    """The structured evaluations of several versions in one query; the caller has each
    version through the gate (version_compare's versions)."""
    return EvaluationResult.objects.filter(version__in=[v.pk for v in versions]).order_by(
        "kind", "name", "dataset", "split"
    )


def alias_list(*, user: AnyUser, registered_model: RegisteredModel) -> QuerySet[Alias]:
    return permissions.visible(
        user, Alias.objects.filter(registered_model=registered_model)
    ).select_related("version")


def artifact_get(*, user: AnyUser, version: ModelVersion, artifact_id: int) -> Artifact:
    artifact = (
        permissions.visible(user, Artifact.objects.filter(version=version, pk=artifact_id))
        .select_related("version__registered_model")
        .first()
    )
    if artifact is None:
        raise NotFound("Artifact not found.", code="artifact_not_found")
    return artifact


def deployment_list(
    *, user: AnyUser, version: ModelVersion | None = None, status: str | None = None
) -> QuerySet[Deployment]:
    qs = permissions.visible(user, Deployment.objects.all())
    if version is not None:
        qs = qs.filter(version=version)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("version__registered_model", "deployed_by")


def deployment_get(*, user: AnyUser, pk: int, retiring: bool = False) -> Deployment:
    """A deployment the user may view; `retiring`: also one of a deleted version of a model
    they may view (it serves nothing anyone may read, and retiring it is all that is left)."""
    rows = deployment_list(user=user)
    if retiring:
        rows = Deployment.objects.filter(
            version__registered_model__in=permissions.visible_models(user).values("pk")
        ).select_related("version__registered_model", "deployed_by")
    deployment = rows.filter(pk=pk).first()
    if deployment is None:
        raise NotFound("Deployment not found.", code="deployment_not_found")
    return deployment


# Lineage records are visible as far as the model versions they lead to
# (core.permissions.visible_lineage): a global view grant reads the whole catalogue.
# Upstream links (a run's datasets and code, a dataset's features, a feature's source) lead to
# the same versions, so they are visible too; downstream links to versions are filtered.


def feature_source_list(*, user: AnyUser) -> QuerySet[FeatureSource]:
    return permissions.visible_lineage(user, FeatureSource.objects.select_related("created_by"))


def logical_feature_list(*, user: AnyUser) -> QuerySet[LogicalFeature]:
    return permissions.visible_lineage(
        user, LogicalFeature.objects.select_related("source", "created_by")
    )


def dataset_list(*, user: AnyUser) -> QuerySet[Dataset]:
    return permissions.visible_lineage(
        user, Dataset.objects.select_related("created_by").prefetch_related("features")
    )


def code_ref_list(*, user: AnyUser) -> QuerySet[CodeRef]:
    return permissions.visible_lineage(user, CodeRef.objects.select_related("created_by"))


def training_run_list(*, user: AnyUser) -> QuerySet[TrainingRun]:
    return permissions.visible_lineage(
        user,
        TrainingRun.objects.select_related("code_ref", "created_by").prefetch_related(
            Prefetch(
                "dataset_links", queryset=TrainingRunDataset.objects.select_related("dataset")
            ),
            Prefetch(
                "model_versions",
                queryset=permissions.visible(user, ModelVersion.objects.all())
                .select_related("registered_model")
                .order_by("registered_model__name", "version"),
                to_attr="visible_versions",
            ),
        ),
    )


def lineage_catalogue(*, user: AnyUser) -> list[tuple[str, QuerySet[Any], str]]:
    """Each kind of lineage record the user may see, with the column its name is in (the
    lineage graph's kinds)."""
    return [
        ("source", feature_source_list(user=user), "name"),
        ("feature", logical_feature_list(user=user), "name"),
        ("dataset", dataset_list(user=user), "name"),
        ("code", code_ref_list(user=user), "repository"),
        ("run", training_run_list(user=user), "run_id"),
    ]


def catalog_get(queryset: QuerySet[Any], pk: int, what: str) -> Any:
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        error = NotFound(
            f"{what.replace('_', ' ').capitalize()} not found.", code=f"{what}_not_found"
        )
        # Only on this error path: does it exist, hidden by the gate? (for the audit log)
        if queryset.model.objects.filter(pk=pk).exists():
            error.refusing(None, "", f"view {what} {pk}")
        raise error
    return obj


def models_trained_on(*, user: AnyUser, dataset: Dataset) -> QuerySet[VersionRow]:
    """Which versions (the user may see) were trained on this dataset?"""
    return (
        permissions.visible(user, _version_queryset())
        .filter(training_run__dataset_links__dataset=dataset)
        .distinct()
    )


def job_list(*, user: AnyUser, version: ModelVersion) -> list[PackagingJob]:
    """The version's packaging jobs, newest first (the version was fetched visibly)."""
    return list(
        permissions.visible(user, PackagingJob.objects.filter(version=version)).select_related(
            "requested_by"
        )[:200]
    )


def job_get(*, user: AnyUser, version: ModelVersion, job_id: int) -> PackagingJob:
    job = (
        permissions.visible(user, PackagingJob.objects.filter(version=version, pk=job_id))
        .select_related("requested_by", "version__registered_model")
        .first()
    )
    if job is None:
        raise NotFound(f"Job {job_id} of this version not found.", code="job_not_found")
    return job


class ModelLookups:
    """For views of any app (mixed into an API view with `self.request`): the model and
    version in the URL, as the signed-in user may see them (404 otherwise)."""

    request: Any

    def registered_model(self, name: str) -> RegisteredModel:
        # Reads show the model, so they need its display columns; writes only pass it on.
        return registered_model_get(
            user=self.request.user, name=name, details=self.request.method in ("GET", "HEAD")
        )

    def shown_model(self, name: str) -> ModelRow:
        """The model with its display columns, to answer a write with what it changed."""
        return registered_model_get(user=self.request.user, name=name)

    def version(self, name: str, number: int) -> VersionRow:
        return version_get(
            user=self.request.user, registered_model=self.registered_model(name), number=number
        )
