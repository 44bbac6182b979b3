"""API shapes. Input serializers check shape and types and never save; services decide the
rest. Output serializers render what selectors return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group, User
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import AwareDateTimeField, Links, StrictInput, iso, username
from registry.models import (
    Artifact,
    CodeRef,
    Dataset,
    Deployment,
    EvaluationResult,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    PackagingJob,
    RegisteredModel,
    TrainingRun,
)
from registry.selectors import version_children

if TYPE_CHECKING:  # a typing-only name (selectors define it for type checkers)
    from registry.selectors import ModelRow, VersionRow

# Fields the server owns: a client that sends them is told so instead of being ignored.


def _text(**kw: Any) -> serializers.CharField:
    return serializers.CharField(allow_blank=True, trim_whitespace=False, **kw)


class AnyJSON(serializers.JSONField):
    pass


class RegisteredModelCreateIn(StrictInput):
    name = serializers.CharField(trim_whitespace=False, allow_blank=True)
    description = _text(required=False, default="")
    owner = serializers.SlugRelatedField(
        slug_field="username",
        required=False,
        allow_null=True,
        queryset=User.objects.filter(is_active=True),
    )
    team = serializers.SlugRelatedField(
        slug_field="name", required=False, allow_null=True, queryset=Group.objects.all()
    )
    risk_tier = serializers.ChoiceField(
        choices=RegisteredModel.RiskTier.choices,
        required=False,
        default=RegisteredModel.RiskTier.MEDIUM,
    )
    tags = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        default=dict,
    )


class RegisteredModelUpdateIn(StrictInput):
    name = serializers.CharField(trim_whitespace=False, allow_blank=True, required=False)
    description = _text(required=False)
    owner = serializers.SlugRelatedField(
        slug_field="username",
        required=False,
        allow_null=True,
        queryset=User.objects.filter(is_active=True),
    )
    team = serializers.SlugRelatedField(
        slug_field="name", required=False, allow_null=True, queryset=Group.objects.all()
    )
    risk_tier = serializers.ChoiceField(choices=RegisteredModel.RiskTier.choices, required=False)
    metric_directions = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='Which way each metric is better: {"name": "higher" | "lower"}, replacing '
        "the model's declarations. Names not declared take a default from their words "
        "(loss, latency, error: lower; auc, accuracy, f1: higher) or have no direction.",
    )


class TagValueIn(StrictInput):
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)


class VersionCreateIn(StrictInput):
    description = _text(required=False, default="")
    # A declared field: the serializer's metaclass takes it out of the class (the stubs
    # see Field.source).
    source = _text(required=False, default="")  # type: ignore[assignment]
    run_id = _text(required=False, default="")
    run_link = _text(required=False, default="")
    flavor = _text(required=False, default="")
    params = serializers.DictField(required=False, default=dict)
    metrics = AnyJSON(required=False, default=dict)
    signature = serializers.DictField(required=False, allow_null=True, default=None)
    input_example = AnyJSON(required=False, allow_null=True, default=None)
    pip_requirements = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )
    python_version = _text(required=False, default="")
    tags = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        default=dict,
    )
    training_run = serializers.SlugRelatedField(
        slug_field="run_id",
        required=False,
        allow_null=True,
        default=None,
        queryset=TrainingRun.objects.all(),
    )
    status = serializers.ChoiceField(
        choices=[ModelVersion.Status.READY, ModelVersion.Status.PENDING_REGISTRATION],
        required=False,
        default=ModelVersion.Status.READY,
    )


class VersionUpdateIn(StrictInput):
    description = _text(required=False)
    run_link = _text(required=False)
    flavor = _text(required=False)
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False)
    status_message = _text(required=False)
    signature = serializers.DictField(required=False, allow_null=True)
    input_example = AnyJSON(required=False, allow_null=True)
    pip_requirements = serializers.ListField(child=serializers.CharField(), required=False)
    python_version = _text(required=False)
    training_run = serializers.SlugRelatedField(
        slug_field="run_id", required=False, allow_null=True, queryset=TrainingRun.objects.all()
    )


class StageIn(StrictInput):
    stage = serializers.ChoiceField(choices=ModelVersion.Stage.choices)
    archive_existing = serializers.BooleanField(required=False, default=False)


class MetricsIn(StrictInput):
    metrics = AnyJSON()


class EvaluationsIn(StrictInput):
    evaluations = AnyJSON(
        help_text="A list of {name, kind, data, dataset?, split?}; kind confusion_matrix "
        "({labels, matrix}), curve ({curve: roc|pr|other, points: [{x, y, threshold?}]}) or "
        "slices ({metric, slices: [{slice, value, count?}]})"
    )


class AliasIn(StrictInput):
    version = serializers.IntegerField(min_value=1)


# --- Output ---------------------------------------------------------------------------------


class LinkedSerializer(serializers.Serializer):
    @property
    def links(self) -> Links:
        # One per serializer; a list's rows share their child serializer, hence its Links.
        if "_links" not in self.__dict__:
            self.__dict__["_links"] = Links()
        return self.__dict__["_links"]


class RegisteredModelOut(LinkedSerializer):
    """A registered model as selectors return it (annotated names, prefetched lists). The
    fields are declared for the schema; rendering is explicit because lists render many."""

    name = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    team = serializers.CharField(allow_null=True)
    risk_tier = serializers.CharField()
    metric_directions = serializers.DictField(
        child=serializers.ChoiceField(choices=["higher", "lower"]),
        help_text="Declared directions only; defaults apply to the other names",
    )
    tags = serializers.DictField(child=serializers.CharField())
    aliases = serializers.DictField(child=serializers.IntegerField())
    latest_versions = serializers.DictField(
        child=serializers.IntegerField(), help_text="Newest version per live stage"
    )
    last_version_number = serializers.IntegerField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()
    url = serializers.CharField()

    def to_representation(self, obj: ModelRow) -> dict[str, Any]:
        return {
            "name": obj.name,
            "description": obj.description,
            "owner": obj.owner_name,
            "team": obj.team_name,
            "risk_tier": obj.risk_tier,
            "metric_directions": obj.metric_directions,
            "tags": dict(sorted((obj.tag_map or {}).items())),
            "aliases": dict(sorted((obj.alias_map or {}).items())),
            "latest_versions": obj.latest_versions or {},
            "last_version_number": obj.last_version_number,
            "created_by": obj.created_by_name,
            "created_at": iso(obj.created_at),
            "updated_by": obj.updated_by_name,
            "updated_at": iso(obj.updated_at),
            "url": self.links.model(obj.name),
        }


class EvaluationResultOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=EvaluationResult.Kind.choices)
    dataset = serializers.CharField()
    split = serializers.CharField()
    # A declared field: the serializer's metaclass takes it out of the class (the stubs see
    # Serializer.data).
    data = serializers.DictField(help_text="As recorded, validated by kind")  # type: ignore[assignment]


class MetricOut(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.FloatField()
    dataset = serializers.CharField()
    split = serializers.CharField()


def artifact_data(
    row: dict[str, Any], model_name: str, number: int, links: Links | None = None
) -> dict[str, Any]:
    """An artifact as the API shows it, from the row shape `version_children` returns."""
    links = links or Links()
    return {
        **row,
        "derived": bool(row.get("derived")),
        "created_at": iso(row["created_at"]),
        "download_url": links.download(model_name, number, row["id"]),
    }


class ArtifactOut(serializers.Serializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    media_type = serializers.CharField()
    format = serializers.CharField()
    derived_from = serializers.IntegerField(allow_null=True)
    derived = serializers.BooleanField(
        help_text="Written by one of Modelgate's jobs (ONNX, "
        "bundle): outside the version's content digest"
    )
    derived_by_job = serializers.IntegerField(allow_null=True)
    input_digest = serializers.CharField(
        help_text="For derived files: the version's content digest they were made from"
    )
    safety = serializers.CharField(help_text="safe, suspicious or unsafe once inspected")
    created_at = serializers.DateTimeField()
    download_url = serializers.CharField()

    def to_representation(self, obj: Artifact) -> dict[str, Any]:
        version = obj.version
        row = {
            "id": obj.pk,
            "filename": obj.filename,
            "size": obj.size,
            "sha256": obj.sha256,
            "media_type": obj.media_type,
            "format": obj.format,
            "derived_from": obj.derived_from_id,
            "derived": obj.derived,
            "derived_by_job": obj.derived_by_job_id,
            "input_digest": obj.input_digest,
            "safety": obj.safety,
            "created_at": obj.created_at,
        }
        return artifact_data(row, version.registered_model.name, version.version)


class VersionOut(LinkedSerializer):
    """A version as selectors return it (annotated names, prefetched lists)."""

    name = serializers.CharField()
    version = serializers.IntegerField()
    description = serializers.CharField()
    # A declared field: the serializer's metaclass takes it out of the class (the stubs
    # see Field.source).
    source = serializers.CharField()  # type: ignore[assignment]
    run_id = serializers.CharField()
    run_link = serializers.CharField()
    flavor = serializers.CharField()
    params = serializers.JSONField()
    metrics = MetricOut(many=True)
    signature = serializers.JSONField()
    input_example = serializers.JSONField()
    pip_requirements = serializers.ListField(child=serializers.CharField())
    python_version = serializers.CharField()
    status = serializers.CharField()
    status_message = serializers.CharField()
    stage = serializers.CharField()
    stage_changed_at = serializers.DateTimeField(allow_null=True)
    aliases = serializers.ListField(child=serializers.CharField())
    tags = serializers.DictField(child=serializers.CharField())
    artifacts = ArtifactOut(many=True)
    training_run = serializers.CharField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.CharField()

    def to_representation(self, obj: VersionRow) -> dict[str, Any]:
        name = obj.registered_model.name
        children = version_children(obj)
        return {
            "name": name,
            "version": obj.version,
            "description": obj.description,
            "source": obj.source,
            "run_id": obj.run_id,
            "run_link": obj.run_link,
            "flavor": obj.flavor,
            "params": obj.params,
            "metrics": children.metrics,
            "signature": obj.signature,
            "input_example": obj.input_example,
            "pip_requirements": obj.pip_requirements,
            "python_version": obj.python_version,
            "status": obj.status,
            "status_message": obj.status_message,
            "stage": obj.stage,
            "stage_changed_at": iso(obj.stage_changed_at),
            "aliases": children.aliases,
            "tags": children.tags,
            "artifacts": [
                artifact_data(a, name, obj.version, self.links) for a in children.artifacts
            ],
            "training_run": obj.training_run_ref,
            "created_by": obj.created_by_name,
            "created_at": iso(obj.created_at),
            "updated_at": iso(obj.updated_at),
            "url": self.links.version(name, obj.version),
        }


class AliasOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.version")
    updated_at = serializers.DateTimeField()


class ResolveOut(VersionOut):
    """The version a stage or alias resolves to, in the same shape as a version."""


class ValidateIn(serializers.Serializer):
    rows = serializers.ListField(required=False)
    dataframe_records = serializers.ListField(required=False)
    dataframe_split = serializers.DictField(required=False)
    instances = serializers.ListField(required=False)
    inputs = serializers.ListField(required=False)


class RowErrorOut(serializers.Serializer):
    code = serializers.CharField(
        help_text="missing_column, extra_column, wrong_type or wrong_shape"
    )
    message = serializers.CharField()
    row = serializers.IntegerField(help_text="Index of the row, from 0")
    column = serializers.CharField(required=False, help_text="For column errors")


class ValidateOut(serializers.Serializer):
    valid = serializers.BooleanField()
    rows = serializers.IntegerField()
    # A declared field: the serializer's metaclass takes it out of the class (the stubs
    # see Field.errors).
    errors = RowErrorOut(many=True)  # type: ignore[assignment]


class CompareVersionOut(serializers.Serializer):
    version = serializers.IntegerField()
    stage = serializers.CharField()
    created_at = serializers.DateTimeField()


class CompareParamOut(serializers.Serializer):
    name = serializers.CharField()
    values = serializers.ListField(
        child=serializers.JSONField(allow_null=True),
        help_text="One per compared version, in order; null where a version lacks it",
    )
    differs = serializers.BooleanField()


class MetricChangeOut(serializers.Serializer):
    absolute = serializers.FloatField(
        allow_null=True,
        help_text="The difference as the numbers are written (0.7651 - 0.75 is 0.0151)",
    )
    percent = serializers.FloatField(
        allow_null=True, help_text="Of |baseline|, to two decimals; null when the baseline is 0"
    )
    verdict = serializers.ChoiceField(
        choices=["better", "worse", "same"],
        allow_null=True,
        help_text="By the metric's direction; null when nothing decides it",
    )


class CompareMetricOut(serializers.Serializer):
    name = serializers.CharField(help_text="name, with [dataset/split] when recorded")
    metric = serializers.CharField(help_text="The metric's name alone")
    direction = serializers.ChoiceField(
        choices=["higher", "lower"], allow_null=True, help_text="Which way is better"
    )
    direction_source = serializers.ChoiceField(
        choices=["declared", "default", ""],
        help_text="declared by the model, a default from the name's words, or none",
    )
    usual_direction = serializers.ChoiceField(
        choices=["higher", "lower"],
        allow_null=True,
        help_text="The default for the name's words, whatever the model declares",
    )
    values = serializers.ListField(child=serializers.FloatField(allow_null=True))
    changes = MetricChangeOut(many=True, help_text="Against the baseline, one per other version")
    differs = serializers.BooleanField()


class CompareOut(serializers.Serializer):
    """Params and metrics of two or more versions side by side (selectors.version_compare)."""

    registered_model = serializers.CharField()
    baseline = serializers.IntegerField()
    versions = CompareVersionOut(many=True)
    params = CompareParamOut(many=True)
    metrics = CompareMetricOut(many=True)


class JobOut(serializers.Serializer):
    """A packaging job (ONNX conversion, bundle, inspection...) and where it stands."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=PackagingJob.Kind.choices)
    status = serializers.CharField()
    progress = serializers.IntegerField(help_text="0 to 100")
    step = serializers.CharField()
    attempts = serializers.IntegerField()
    input_sha256 = serializers.CharField()
    artifact = serializers.IntegerField(allow_null=True)
    result = serializers.DictField(help_text="What the job produced; depends on its kind")
    error = serializers.CharField()
    log = serializers.CharField()
    forced = serializers.BooleanField()
    requested_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(
        allow_null=True, help_text="The worker's last sign of life"
    )
    waits_for = serializers.IntegerField(
        allow_null=True, help_text="The job this one waits for (a bundle waits for its ONNX)"
    )

    def to_representation(self, job: PackagingJob) -> dict[str, Any]:
        return {
            "id": job.pk,
            "kind": job.kind,
            "status": job.status,
            "progress": job.progress,
            "step": job.step,
            "attempts": job.attempts,
            "input_sha256": job.input_sha256,
            "artifact": job.artifact_id,
            "result": job.result,
            "error": job.error,
            "log": job.log,
            "forced": job.forced,
            "requested_by": job.requested_by.username if job.requested_by else None,
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "heartbeat_at": iso(job.heartbeat_at),
            "waits_for": job.waits_for_id,
        }


class JobListOut(serializers.Serializer):
    results = JobOut(many=True)


# --- Lineage --------------------------------------------------------------------------------


class FeatureSourceIn(StrictInput):
    name = serializers.CharField(trim_whitespace=False, allow_blank=True)
    kind = serializers.ChoiceField(
        choices=FeatureSource.Kind.choices, required=False, default=FeatureSource.Kind.TABLE
    )
    uri = _text(required=False, default="")
    description = _text(required=False, default="")


class FeatureSourceOut(serializers.ModelSerializer):
    class Meta:
        model = FeatureSource
        fields = ["id", "name", "kind", "uri", "description", "created_at"]


class LogicalFeatureIn(StrictInput):
    # A declared field: the serializer's metaclass takes it out of the class (the stubs
    # see Field.source).
    source = serializers.PrimaryKeyRelatedField(queryset=FeatureSource.objects.all())  # type: ignore[assignment]
    name = serializers.CharField(trim_whitespace=False, allow_blank=True)
    dtype = _text(required=False, default="")
    description = _text(required=False, default="")


class LogicalFeatureOut(serializers.ModelSerializer):
    class Meta:
        model = LogicalFeature
        fields = ["id", "source", "name", "dtype", "description", "created_at"]


class DatasetIn(StrictInput):
    name = serializers.CharField(trim_whitespace=False, allow_blank=True)
    version = serializers.CharField(required=False, default="1")
    uri = _text(required=False, default="")
    digest = _text(required=False, default="")
    description = _text(required=False, default="")
    features = serializers.PrimaryKeyRelatedField(
        queryset=LogicalFeature.objects.all(), many=True, required=False, default=list
    )


class DatasetOut(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "version", "uri", "digest", "description", "features", "created_at"]


class CodeRefIn(StrictInput):
    repository = serializers.CharField()
    commit = serializers.CharField()
    path = _text(required=False, default="")


class CodeRefOut(serializers.ModelSerializer):
    class Meta:
        model = CodeRef
        fields = ["id", "repository", "commit", "path", "created_at"]


class RunDatasetIn(serializers.Serializer):
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
    role = serializers.ChoiceField(
        choices=["training", "validation", "test"], required=False, default="training"
    )


class TrainingRunIn(StrictInput):
    run_id = serializers.CharField()
    name = _text(required=False, default="")
    code_ref = serializers.PrimaryKeyRelatedField(
        queryset=CodeRef.objects.all(), required=False, allow_null=True, default=None
    )
    datasets = RunDatasetIn(many=True, required=False, default=list)
    params = serializers.DictField(required=False, default=dict)
    status = serializers.ChoiceField(
        choices=TrainingRun.Status.choices, required=False, default=TrainingRun.Status.FINISHED
    )
    started_at = AwareDateTimeField(required=False, allow_null=True, default=None)
    ended_at = AwareDateTimeField(required=False, allow_null=True, default=None)


class RunDatasetOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()
    role = serializers.CharField(help_text="training, validation or test")


class RunVersionOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class TrainingRunOut(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.CharField()
    name = serializers.CharField()
    code_ref = CodeRefOut(allow_null=True)
    datasets = serializers.SerializerMethodField()
    params = serializers.JSONField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    model_versions = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(RunDatasetOut(many=True))
    def get_datasets(self, obj: TrainingRun) -> list[dict[str, Any]]:
        return [
            {
                "id": link.dataset_id,
                "name": link.dataset.name,
                "version": link.dataset.version,
                "role": link.role,
            }
            for link in obj.dataset_links.all()
        ]

    @extend_schema_field(RunVersionOut(many=True, help_text="Only versions you may see"))
    def get_model_versions(self, obj: TrainingRun) -> list[dict[str, Any]]:
        return [
            {"name": v.registered_model.name, "version": v.version}
            for v in getattr(obj, "visible_versions", [])
        ]


class DeploymentIn(StrictInput):
    name = serializers.CharField(trim_whitespace=False)
    version = serializers.IntegerField(min_value=1)
    environment = serializers.CharField()
    target = serializers.CharField()
    notes = _text(required=False, default="")


class DeploymentOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="version.registered_model.name")
    version = serializers.IntegerField(source="version.version")
    environment = serializers.CharField()
    target = serializers.CharField()
    status = serializers.CharField()
    notes = serializers.CharField()
    deployed_by = serializers.SerializerMethodField()
    deployed_at = serializers.DateTimeField()
    retired_at = serializers.DateTimeField(allow_null=True)

    def get_deployed_by(self, obj: Deployment) -> str | None:
        return username(obj.deployed_by)


class VersionRefOut(serializers.Serializer):
    name = serializers.CharField(source="registered_model.name")
    version = serializers.IntegerField()
    stage = serializers.CharField()
