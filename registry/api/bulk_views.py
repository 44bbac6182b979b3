"""POST /api/v1/lineage/register/: a training run and its lineage in one idempotent call
(registry.services.lineage_bulk holds the rules; this module parses and renders)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ValidationFailed
from core.serializers import AwareDateTimeField, StrictInput
from registry import services
from registry.api.views import RegistryView
from registry.models import FeatureSource, TrainingRun, TrainingRunDataset
from registry.services import lineage_bulk as bulk
from registry.services.lineage_bulk import (
    CodeRefSpec,
    DatasetSpec,
    FeatureSpec,
    Registration,
    RunSpec,
    SourceSpec,
    VersionSpec,
)


def _text(**kw: Any) -> serializers.CharField:
    return serializers.CharField(allow_blank=True, trim_whitespace=False, **kw)


def _name() -> serializers.CharField:
    # Names are checked by the services (registry.validation.name), in the same words as the
    # single-record endpoints.
    return serializers.CharField(trim_whitespace=False, allow_blank=True)


# A nested object of the payload: unknown keys are refused, named by their path
# (`datasets.0.features.1.colour`), rather than ignored. (A comment, not a docstring: the
# schema would describe every subclass by it.)
class _Nested(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = {k: ["Unknown field."] for k in data if k not in self.fields}
            if unknown:
                raise serializers.ValidationError(unknown)
        return super().to_internal_value(data)


# Optional attributes have no default: one left out is not compared with an existing record
# (and takes the model's default on a new one).


class BulkFeatureSourceIn(_Nested):
    name = _name()
    kind = serializers.ChoiceField(choices=FeatureSource.Kind.choices, required=False)
    uri = _text(required=False)
    description = _text(required=False)


class BulkFeatureIn(_Nested):
    # A declared field: the serializer's metaclass takes it out of the class (the stubs
    # see Field.source).
    source = _name()  # type: ignore[assignment]
    name = _name()
    dtype = _text(required=False)
    description = _text(required=False)


class BulkDatasetIn(_Nested):
    name = _name()
    version = serializers.CharField(required=False, default="1")
    role = serializers.ChoiceField(
        choices=TrainingRunDataset.Role.choices,
        required=False,
        default=TrainingRunDataset.Role.TRAINING,
    )
    uri = _text(required=False)
    digest = _text(required=False)
    description = _text(required=False)
    features = BulkFeatureIn(
        many=True,
        required=False,
        help_text="Left out: an existing dataset keeps its features (a new one has none). "
        "Given: an existing dataset must have exactly these.",
    )


class BulkCodeRefIn(_Nested):
    repository = serializers.CharField()
    commit = serializers.CharField()
    path = _text(required=False, default="")


class BulkRunIn(_Nested):
    run_id = serializers.CharField()
    name = _text(required=False)
    params = serializers.DictField(required=False)
    status = serializers.ChoiceField(choices=TrainingRun.Status.choices, required=False)
    started_at = AwareDateTimeField(required=False, allow_null=True)
    ended_at = AwareDateTimeField(required=False, allow_null=True)


class BulkVersionIn(_Nested):
    name = serializers.CharField(trim_whitespace=False)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)


class LineageRegisterIn(StrictInput):
    run = BulkRunIn()
    code_ref = BulkCodeRefIn(
        required=False,
        allow_null=True,
        help_text="Left out: not compared with an existing run. null: the run has none.",
    )
    feature_sources = BulkFeatureSourceIn(many=True, required=False, default=list)
    datasets = BulkDatasetIn(many=True, required=False, default=list)
    model_versions = BulkVersionIn(many=True, required=False, default=list)

    def to_internal_value(self, data: Any) -> Any:
        # Counted before the entries are validated one by one: an oversized payload is
        # refused without the work.
        if isinstance(data, dict):
            _bounded(data)
        return super().to_internal_value(data)


def _bounded(data: dict[str, Any]) -> None:
    def length(value: Any) -> int:
        return len(value) if isinstance(value, list) else 0

    datasets = data.get("datasets")
    features = sum(
        length(d.get("features"))
        for d in (datasets if isinstance(datasets, list) else [])
        if isinstance(d, dict)
    )
    for count, limit, name in (
        (length(data.get("feature_sources")), bulk.MAX_FEATURE_SOURCES, "feature_sources"),
        (length(datasets), bulk.MAX_DATASETS, "datasets"),
        (features, bulk.MAX_FEATURES, "datasets"),
        (length(data.get("model_versions")), bulk.MAX_VERSIONS, "model_versions"),
    ):
        if count > limit:
            what = "features" if name == "datasets" and count == features else name
            raise ValidationFailed(
                f"At most {limit} {what.replace('_', ' ')} per call ({count} given).",
                code="too_many",
                field=name,
            )


class RegisteredSourceOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created = serializers.BooleanField()


class RegisteredFeatureOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    source = serializers.CharField(help_text="The feature source's name")  # type: ignore[assignment]
    name = serializers.CharField()
    created = serializers.BooleanField()


class RegisteredDatasetOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()
    role = serializers.CharField(help_text="training, validation or test")
    created = serializers.BooleanField(help_text="Whether this call recorded the dataset")
    linked = serializers.BooleanField(help_text="Whether this call linked it to the run")


class RegisteredCodeRefOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    repository = serializers.CharField()
    commit = serializers.CharField()
    path = serializers.CharField()
    created = serializers.BooleanField()


class RegisteredRunOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    run_id = serializers.CharField()
    created = serializers.BooleanField()


class RegisteredVersionOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    created = serializers.BooleanField(help_text="Always false: versions are never created here")
    linked = serializers.BooleanField(help_text="Whether this call set its training run")


class LineageRegisterOut(serializers.Serializer[Any]):
    changed = serializers.BooleanField(help_text="Whether anything was written (201) or not (200)")
    training_run = RegisteredRunOut()
    code_ref = RegisteredCodeRefOut(allow_null=True)
    feature_sources = RegisteredSourceOut(many=True)
    features = RegisteredFeatureOut(many=True)
    datasets = RegisteredDatasetOut(many=True, help_text="One entry per dataset of the payload")
    model_versions = RegisteredVersionOut(many=True)


def _specs(data: dict[str, Any]) -> dict[str, Any]:
    """The validated payload as the service's typed arguments (keys left out stay out)."""
    specs: dict[str, Any] = {
        "run": RunSpec(**data["run"]),
        "feature_sources": [SourceSpec(**s) for s in data["feature_sources"]],
        "datasets": [
            DatasetSpec(
                **{k: v for k, v in d.items() if k != "features"},
                features=None if "features" not in d else [FeatureSpec(**f) for f in d["features"]],
            )
            for d in data["datasets"]
        ],
        "model_versions": [VersionSpec(**v) for v in data["model_versions"]],
    }
    if "code_ref" in data:
        specs["code_ref"] = None if data["code_ref"] is None else CodeRefSpec(**data["code_ref"])
    return specs


class LineageRegisterView(RegistryView):
    """Register a training run with its code reference, datasets (with roles), features and
    the versions it produced, by natural keys, in one transaction. Idempotent: existing
    records are reused, never changed (a payload that describes one differently is a 409
    lineage_mismatch and nothing is written); 201 when something was recorded or linked, 200
    when nothing changed."""

    pagination_class = None

    @extend_schema(
        request=LineageRegisterIn,
        responses={201: LineageRegisterOut, 200: LineageRegisterOut},
    )
    def post(self, request: Request) -> Response:
        registration: Registration = services.lineage_register(
            actor=self.actor(), **_specs(self.valid(LineageRegisterIn))
        )
        return Response(
            LineageRegisterOut(registration).data,
            status=status.HTTP_201_CREATED if registration.changed else status.HTTP_200_OK,
        )
