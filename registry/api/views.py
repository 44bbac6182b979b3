"""REST endpoints for the registry: thin adapters over selectors and services."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.edge import is_whole_number, tag_filters, whole_number
from core.errors import ValidationFailed
from core.serializers import Links, StrictInput
from core.views import ApiView, choice
from registry import selectors, services, validation
from registry.api import serializers as s
from registry.models import ModelVersion, PackagingJob, RegisteredModel
from registry.selectors import ModelLookups
from registry.services.artifacts import CHUNK, check_declared_size, read_chunks
from registry.uploads import LimitedTemporaryFileUploadHandler


class RegistryView(ModelLookups, ApiView):
    """The API edge's plumbing (core.api.ApiView) with lookups of models and versions."""


_LIST_PARAMS = [
    OpenApiParameter(
        "q",
        str,
        description="Search expression, e.g. "
        "name LIKE 'credit%' AND (tags.team = 'risk' OR metrics.auc > 0.9)",
    ),
    OpenApiParameter("name", str, description="Name contains (case-insensitive)"),
    OpenApiParameter("tag", str, many=True, description="key=value; repeat for several"),
    OpenApiParameter("stage", str),
    OpenApiParameter("owner", str),
    OpenApiParameter("ordering", str),
    OpenApiParameter("cursor", str),
    OpenApiParameter("page_size", int),
]


class ModelListView(RegistryView):
    ordering = "name"
    ordering_fields = ("name", "-name", "created_at", "-created_at", "updated_at", "-updated_at")

    @extend_schema(
        parameters=[
            *_LIST_PARAMS,
            OpenApiParameter("team", str),
            OpenApiParameter("risk_tier", str),
        ],
        responses=s.RegisteredModelOut(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = selectors.ModelFilters(
            name_contains=request.query_params.get("name"),
            tags=tag_filters(request.query_params.getlist("tag")),
            stage=choice(request, "stage", ModelVersion.Stage.values),
            owner=request.query_params.get("owner"),
            team=request.query_params.get("team"),
            risk_tier=choice(request, "risk_tier", RegisteredModel.RiskTier.values),
            q=request.query_params.get("q"),
        )
        return self.page(
            selectors.registered_model_list(user=request.user, filters=filters),
            s.RegisteredModelOut,
        )

    @extend_schema(request=s.RegisteredModelCreateIn, responses={201: s.RegisteredModelOut})
    def post(self, request: Request) -> Response:
        data = self.valid(s.RegisteredModelCreateIn)
        registered_model = services.registered_model_create(actor=self.actor(), **data)
        return Response(
            s.RegisteredModelOut(self.shown_model(registered_model.name)).data,
            status=status.HTTP_201_CREATED,
        )


class ModelDetailView(RegistryView):
    @extend_schema(responses=s.RegisteredModelOut)
    def get(self, request: Request, name: str) -> Response:
        return Response(s.RegisteredModelOut(self.registered_model(name)).data)

    @extend_schema(request=s.RegisteredModelUpdateIn, responses=s.RegisteredModelOut)
    def patch(self, request: Request, name: str) -> Response:
        registered_model = self.registered_model(name)
        data = self.valid(s.RegisteredModelUpdateIn, partial=True)
        registered_model = services.registered_model_update(
            actor=self.actor(), registered_model=registered_model, **data
        )
        return Response(s.RegisteredModelOut(self.shown_model(registered_model.name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        services.registered_model_delete(
            actor=self.actor(), registered_model=self.registered_model(name)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelTagView(RegistryView):
    @extend_schema(request=s.TagValueIn, responses=s.RegisteredModelOut)
    def put(self, request: Request, name: str, key: str) -> Response:
        registered_model = self.registered_model(name)
        services.registered_model_tag_set(
            actor=self.actor(),
            registered_model=registered_model,
            key=key,
            **self.valid(s.TagValueIn),
        )
        return Response(s.RegisteredModelOut(self.shown_model(name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, key: str) -> Response:
        services.registered_model_tag_delete(
            actor=self.actor(), registered_model=self.registered_model(name), key=key
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


_VERSION_ORDERINGS = ("version", "-version", "created_at", "-created_at")


# What the version lists share: their orderings and their filters. (A comment, not a
# docstring: the schema describes each view by its own.)
class _VersionRows(RegistryView):
    ordering_fields = _VERSION_ORDERINGS

    def filters(self, request: Request, **extra: Any) -> selectors.VersionFilters:
        return selectors.VersionFilters(
            name_contains=request.query_params.get("name"),
            tags=tag_filters(request.query_params.getlist("tag")),
            stage=choice(request, "stage", ModelVersion.Stage.values),
            status=choice(request, "status", ModelVersion.Status.values),
            owner=request.query_params.get("owner"),
            run_id=request.query_params.get("run_id"),
            q=request.query_params.get("q"),
            **extra,
        )


class VersionSearchView(_VersionRows):
    """Versions across every model the user may see."""

    @extend_schema(
        parameters=[
            *_LIST_PARAMS,
            OpenApiParameter("status", str),
            OpenApiParameter("run_id", str),
        ],
        responses=s.VersionOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return self.page(
            selectors.version_list(user=request.user, filters=self.filters(request)), s.VersionOut
        )


class VersionListView(_VersionRows):
    """One model's versions: GET lists them, POST registers a new one."""

    ordering = "-version"

    @extend_schema(parameters=_LIST_PARAMS, responses=s.VersionOut(many=True))
    def get(self, request: Request, name: str) -> Response:
        registered_model = self.registered_model(name)
        return self.page(
            selectors.version_list(
                user=request.user, filters=self.filters(request, registered_model=registered_model)
            ),
            s.VersionOut,
        )

    @extend_schema(
        request=s.VersionCreateIn,
        responses={201: s.VersionOut, 200: s.VersionOut},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="A retry with the same key returns "
                "the version the first request created.",
            )
        ],
    )
    def post(self, request: Request, name: str) -> Response:
        registered_model = self.registered_model(name)
        data = self.valid(s.VersionCreateIn)
        version, created = services.version_create(
            actor=self.actor(),
            registered_model=registered_model,
            idempotency_key=request.headers.get("Idempotency-Key"),
            **data,
        )
        version = selectors.version_get(
            user=request.user, registered_model=registered_model, number=version.version
        )
        return Response(
            s.VersionOut(version).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class VersionDetailView(RegistryView):
    @extend_schema(responses=s.VersionOut)
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(s.VersionOut(self.version(name, number)).data)

    @extend_schema(request=s.VersionUpdateIn, responses=s.VersionOut)
    def patch(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        data = self.valid(s.VersionUpdateIn, partial=True)
        services.version_update(actor=self.actor(), version=version, **data)
        return Response(s.VersionOut(self.version(name, number)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, number: int) -> Response:
        services.version_delete(actor=self.actor(), version=self.version(name, number))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionStageView(RegistryView):
    @extend_schema(request=s.StageIn, responses=s.VersionOut)
    def post(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        services.version_stage_set(actor=self.actor(), version=version, **self.valid(s.StageIn))
        return Response(s.VersionOut(self.version(name, number)).data)


class JobIn(StrictInput):
    kind = s.serializers.ChoiceField(choices=PackagingJob.Kind.choices)
    artifact = s.serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None
    )
    force = s.serializers.BooleanField(required=False, default=False)


class JobListView(RegistryView):
    @extend_schema(operation_id="v1_models_versions_jobs_list", responses=s.JobListOut)
    def get(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        rows = selectors.job_list(user=request.user, version=version)
        return Response({"results": s.JobOut(rows, many=True).data})

    @extend_schema(request=JobIn, responses={201: s.JobOut, 200: s.JobOut})
    def post(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        data = self.valid(JobIn)
        artifact = (
            selectors.artifact_get(user=request.user, version=version, artifact_id=data["artifact"])
            if data["artifact"]
            else None
        )
        job, created = services.job_start(
            actor=self.actor(),
            version=version,
            kind=data["kind"],
            artifact=artifact,
            force=data["force"],
        )
        return Response(
            s.JobOut(job).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class JobDetailView(RegistryView):
    @extend_schema(responses=s.JobOut)
    def get(self, request: Request, name: str, number: int, job_id: int) -> Response:
        job = selectors.job_get(
            user=request.user, version=self.version(name, number), job_id=job_id
        )
        return Response(s.JobOut(job).data)


class JobCancelView(RegistryView):
    @extend_schema(request=None, responses=s.JobOut)
    def post(self, request: Request, name: str, number: int, job_id: int) -> Response:
        job = selectors.job_get(
            user=request.user, version=self.version(name, number), job_id=job_id
        )
        return Response(s.JobOut(services.job_cancel(actor=self.actor(), job=job)).data)


class VersionTagView(RegistryView):
    @extend_schema(request=s.TagValueIn, responses=s.VersionOut)
    def put(self, request: Request, name: str, number: int, key: str) -> Response:
        services.version_tag_set(
            actor=self.actor(),
            version=self.version(name, number),
            key=key,
            **self.valid(s.TagValueIn),
        )
        return Response(s.VersionOut(self.version(name, number)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, number: int, key: str) -> Response:
        services.version_tag_delete(actor=self.actor(), version=self.version(name, number), key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionMetricsView(RegistryView):
    @extend_schema(request=s.MetricsIn, responses=s.VersionOut)
    def post(self, request: Request, name: str, number: int) -> Response:
        services.version_metrics_log(
            actor=self.actor(), version=self.version(name, number), **self.valid(s.MetricsIn)
        )
        return Response(s.VersionOut(self.version(name, number)).data)


class VersionEvaluationsView(RegistryView):
    """A version's structured evaluation results: confusion matrices, curves, metrics by
    slice. POST adds or replaces them by name, dataset and split (refused once sealed)."""

    pagination_class = None  # a version's evaluations: one list, as the schema says

    @extend_schema(responses=s.EvaluationResultOut(many=True))
    def get(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        return Response(s.EvaluationResultOut(selectors.evaluation_list(version), many=True).data)

    @extend_schema(request=s.EvaluationsIn, responses={201: s.EvaluationResultOut(many=True)})
    def post(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        services.version_evaluations_log(
            actor=self.actor(), version=version, **self.valid(s.EvaluationsIn)
        )
        return Response(
            s.EvaluationResultOut(selectors.evaluation_list(version), many=True).data,
            status=status.HTTP_201_CREATED,
        )


class VersionValidateView(RegistryView):
    """Check rows against the version's signature; nothing is stored."""

    @extend_schema(request=s.ValidateIn, responses=s.ValidateOut)
    def post(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        if not version.signature:
            raise ValidationFailed(
                f"Version {number} has no signature to validate against.", code="no_signature"
            )
        inputs = version.signature["inputs"]
        rows = validation.rows_from_payload(request.data, validation.is_tensor_schema(inputs))
        errors = validation.rows_check(inputs, rows)
        return Response({"valid": not errors, "rows": len(rows), "errors": errors})


class ModelCompareView(RegistryView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "versions",
                str,
                required=True,
                description="Comma-separated, e.g. 1,3,4; the first is the baseline",
            )
        ],
        responses=s.CompareOut,
    )
    def get(self, request: Request, name: str) -> Response:
        raw = request.query_params.get("versions", "")
        numbers = [whole_number(p, "versions") for p in raw.split(",") if p.strip()]
        result = selectors.version_compare(
            user=request.user, registered_model=self.registered_model(name), numbers=numbers
        )
        result["versions"] = [
            {"version": v.version, "stage": v.stage, "created_at": v.created_at}
            for v in result["versions"]
        ]
        return Response(result)


class ModelResolveView(RegistryView):
    """What a stage or alias points at right now, with download URLs and digests."""

    @extend_schema(
        parameters=[OpenApiParameter("stage", str), OpenApiParameter("alias", str)],
        responses=s.ResolveOut,
    )
    def get(self, request: Request, name: str) -> Response:
        version = selectors.version_resolve(
            user=request.user,
            registered_model=self.registered_model(name),
            stage=request.query_params.get("stage"),
            alias=request.query_params.get("alias"),
        )
        return Response(s.ResolveOut(version).data)


class AliasListView(RegistryView):
    pagination_class = None  # a model's aliases are few: one list, as the schema says

    @extend_schema(responses=s.AliasOut(many=True))
    def get(self, request: Request, name: str) -> Response:
        aliases = selectors.alias_list(
            user=request.user, registered_model=self.registered_model(name)
        )
        return Response(s.AliasOut(aliases, many=True).data)


class AliasDetailView(RegistryView):
    @extend_schema(request=s.AliasIn, responses=s.AliasOut)
    def put(self, request: Request, name: str, alias: str) -> Response:
        registered_model = self.registered_model(name)
        number = self.valid(s.AliasIn)["version"]
        version = selectors.version_get(
            user=request.user, registered_model=registered_model, number=number
        )
        result = services.alias_set(
            actor=self.actor(), registered_model=registered_model, name=alias, version=version
        )
        return Response(s.AliasOut(result).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, alias: str) -> Response:
        services.alias_delete(
            actor=self.actor(), registered_model=self.registered_model(name), name=alias
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ArtifactListView(RegistryView):
    """GET lists a version's files. POST uploads one: either the raw bytes as the body with
    ``?filename=``, or a multipart form with a ``file`` field."""

    parser_classes = [MultiPartParser]  # raw bodies are read from the socket, not parsed
    pagination_class = None  # a version's files: one list, as the schema says

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication: session auth's CSRF check reads a form token from a
        # multipart body, and that first parse must already go through the size limit.
        request._request.upload_handlers = [LimitedTemporaryFileUploadHandler(request._request)]
        super().initial(request, *args, **kwargs)

    @extend_schema(responses=s.ArtifactOut(many=True))
    def get(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        links = Links()
        return Response(
            [
                s.artifact_data(a, name, number, links)
                for a in selectors.version_children(version).artifacts
            ]
        )

    @extend_schema(
        request={
            "application/octet-stream": OpenApiTypes.BINARY,
            "multipart/form-data": OpenApiTypes.OBJECT,
        },
        parameters=[OpenApiParameter("filename", str)],
        responses={201: s.ArtifactOut},
    )
    def post(self, request: Request, name: str, number: int) -> Response:
        version = self.version(name, number)
        declared = request.META.get("CONTENT_LENGTH")
        declared_size = int(declared) if declared and is_whole_number(declared) else None
        content_type = request.content_type or ""
        if content_type.startswith("multipart/form-data"):
            check_declared_size(declared_size)
            upload = request.data.get("file")
            if upload is None or isinstance(upload, str):
                raise ValidationFailed("Send the file in a field named 'file'.", field="file")
            filename = request.data.get("filename") or upload.name
            chunks = upload.chunks(CHUNK)
            media_type = upload.content_type
        else:
            filename = request.query_params.get("filename", "")
            # Read the body straight from the socket in chunks: never request.body, never
            # request.data, so nothing holds the whole file in memory.
            chunks = read_chunks(request._request)
            media_type = content_type
        artifact = services.artifact_upload(
            actor=self.actor(),
            version=version,
            filename=filename,
            chunks=chunks,
            media_type=media_type,
            declared_size=declared_size,
        )
        return Response(s.ArtifactOut(artifact).data, status=status.HTTP_201_CREATED)


class ArtifactDetailView(RegistryView):
    @extend_schema(responses=s.ArtifactOut)
    def get(self, request: Request, name: str, number: int, artifact_id: int) -> Response:
        artifact = selectors.artifact_get(
            user=request.user, version=self.version(name, number), artifact_id=artifact_id
        )
        return Response(s.ArtifactOut(artifact).data)


class ArtifactDownloadView(RegistryView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, name: str, number: int, artifact_id: int) -> FileResponse:
        artifact = selectors.artifact_get(
            user=request.user, version=self.version(name, number), artifact_id=artifact_id
        )
        handle = services.artifact_open(actor=self.actor(), artifact=artifact)
        response = FileResponse(
            handle, as_attachment=True, filename=artifact.filename, content_type=artifact.media_type
        )
        response["Content-Length"] = str(artifact.size)
        response["Digest"] = f"sha-256={artifact.sha256}"
        response["X-Content-SHA256"] = artifact.sha256
        return response
