"""REST endpoints for promotions, policies, history, compliance and the audit log."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core import permissions
from core.api import DownloadRenderer
from core.edge import instant
from core.errors import NotFound, ValidationFailed
from core.permissions import Perm
from core.views import ApiView, choice
from governance import compliance, history, policies, promotions, selectors
from governance.api import serializers as s
from governance.models import PromotionRequest
from registry.selectors import ModelLookups


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "")
    if value not in ("", "0", "1", "true", "false"):
        raise ValidationFailed(f"{name} must be true or false.", field=name, code="invalid_filter")
    return value in ("1", "true")


def _instant(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    return instant(raw, name) if raw else None


class GovernanceView(ModelLookups, ApiView):
    """The API edge's plumbing with lookups of the model and version in the URL."""


class PromotionRequestListView(GovernanceView):
    ordering_fields = ("created_at", "-created_at", "updated_at", "-updated_at")

    @extend_schema(
        parameters=[
            OpenApiParameter("model", str),
            OpenApiParameter("status", str),
            OpenApiParameter("target", str, description="A stage or an alias name"),
            OpenApiParameter("mine", bool, description="Only requests I made"),
            OpenApiParameter("awaiting_my_review", bool, description="My review inbox"),
            OpenApiParameter("ordering", str),
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=s.PromotionRequestOut(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = selectors.RequestFilters(
            model=request.query_params.get("model"),
            status=choice(request, "status", PromotionRequest.Status.values),
            target=request.query_params.get("target"),
            requested_by_me=_flag(request, "mine"),
            awaiting_my_review=_flag(request, "awaiting_my_review"),
        )
        return self.page(
            selectors.promotion_request_list(user=request.user, filters=filters),
            s.PromotionRequestOut,
        )

    @extend_schema(request=s.PromotionRequestIn, responses={201: s.PromotionRequestDetailOut})
    def post(self, request: Request) -> Response:
        data = self.valid(s.PromotionRequestIn)
        version = self.version(data.pop("model"), data.pop("version"))
        created = promotions.promotion_request_create(actor=self.actor(), version=version, **data)
        return detail_response(request, created.pk, status.HTTP_201_CREATED)


def detail_response(request: Request, pk: int, code: int = status.HTTP_200_OK) -> Response:
    found = selectors.promotion_request_get(user=request.user, pk=pk)
    evaluation = promotions.evaluate(found)
    context = {
        "evaluation": evaluation,
        "refusal": promotions.review_refusal(request.user, found, evaluation),
    }
    return Response(s.PromotionRequestDetailOut(found, context=context).data, status=code)


class PromotionRequestDetailView(GovernanceView):
    @extend_schema(responses=s.PromotionRequestDetailOut)
    def get(self, request: Request, pk: int) -> Response:
        return detail_response(request, pk)


class PromotionRequestActionView(GovernanceView):
    def found(self, pk: int) -> PromotionRequest:
        return selectors.promotion_request_get(user=self.request.user, pk=pk)


class PromotionReviewView(PromotionRequestActionView):
    @extend_schema(request=s.ReviewIn, responses=s.PromotionRequestDetailOut)
    def post(self, request: Request, pk: int) -> Response:
        promotions.promotion_request_review(
            actor=self.actor(), promotion_request=self.found(pk), **self.valid(s.ReviewIn)
        )
        return detail_response(request, pk)


class PromotionApplyView(PromotionRequestActionView):
    @extend_schema(request=None, responses=s.PromotionRequestDetailOut)
    def post(self, request: Request, pk: int) -> Response:
        promotions.promotion_request_apply(actor=self.actor(), promotion_request=self.found(pk))
        return detail_response(request, pk)


class PromotionCancelView(PromotionRequestActionView):
    @extend_schema(request=s.CancelIn, responses=s.PromotionRequestDetailOut)
    def post(self, request: Request, pk: int) -> Response:
        promotions.promotion_request_cancel(
            actor=self.actor(), promotion_request=self.found(pk), **self.valid(s.CancelIn)
        )
        return detail_response(request, pk)


class ModelRollbackView(GovernanceView):
    @extend_schema(request=s.RollbackIn, responses={201: s.PromotionRequestDetailOut})
    def post(self, request: Request, name: str) -> Response:
        created = promotions.promotion_request_rollback(
            actor=self.actor(),
            registered_model=self.registered_model(name),
            **self.valid(s.RollbackIn),
        )
        return detail_response(request, created.pk, status.HTTP_201_CREATED)


class ModelPolicyView(GovernanceView):
    @extend_schema(responses=s.PolicyOut)
    def get(self, request: Request, name: str) -> Response:
        return Response(s.PolicyOut(policies.policy_for(self.registered_model(name))).data)


class ModelHistoryView(GovernanceView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "at",
                OpenApiTypes.DATETIME,
                description="Which versions held each "
                "stage and alias at this instant; without it, the whole timeline",
            ),
            OpenApiParameter("kind", str),
            OpenApiParameter("name", str),
        ],
        responses=s.HistoryOut,
    )
    def get(self, request: Request, name: str) -> Response:
        registered_model = self.registered_model(name)
        at = _instant(request, "at")
        if at is not None:
            return Response(history.at_instant(registered_model, at))
        return Response(
            {
                "model": registered_model.name,
                "timeline": history.timeline(
                    registered_model,
                    kind=choice(request, "kind", ["stage", "alias"]),
                    name=request.query_params.get("name"),
                ),
            }
        )


class ModelComplianceView(GovernanceView):
    @extend_schema(responses=s.ComplianceOut)
    def get(self, request: Request, name: str) -> Response:
        return Response(compliance.report(self.registered_model(name)))


def _audit_filters(request: Request) -> selectors.AuditFilters:
    return selectors.AuditFilters(
        model=request.query_params.get("model"),
        actor=request.query_params.get("actor"),
        action=request.query_params.get("action"),
        since=_instant(request, "since"),
        until=_instant(request, "until"),
    )


_AUDIT_PARAMS = [
    OpenApiParameter("model", str),
    OpenApiParameter("actor", str),
    OpenApiParameter("action", str, description="Exact, or a prefix ending in '.' (promotion.)"),
    OpenApiParameter("since", OpenApiTypes.DATETIME),
    OpenApiParameter("until", OpenApiTypes.DATETIME),
]


class AuditEventListView(GovernanceView):
    ordering = "-sequence"
    ordering_fields = ("sequence", "-sequence")

    @extend_schema(
        parameters=[
            *_AUDIT_PARAMS,
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
            OpenApiParameter("ordering", str),
        ],
        responses=s.AuditEventOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return self.page(
            selectors.audit_event_list(user=request.user, filters=_audit_filters(request)),
            s.AuditEventOut,
        )


class JSONLinesRenderer(DownloadRenderer):
    media_type, format = "application/x-ndjson", "jsonl"


class CSVRenderer(DownloadRenderer):
    media_type, format = "text/csv", "csv"


def _jsonl(rows: Iterator[Any]) -> Iterator[str]:
    for event in rows:
        yield json.dumps(s.audit_event_data(event), sort_keys=True, default=str) + "\n"


def _csv(rows: Iterator[Any]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(s.AUDIT_COLUMNS)
    for event in rows:
        data = s.audit_event_data(event)
        data["details"] = json.dumps(data["details"], sort_keys=True)
        writer.writerow(["" if data[c] is None else data[c] for c in s.AUDIT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


class AuditExportView(GovernanceView):
    """The filtered log in sequence order, streamed: JSON Lines or CSV."""

    renderer_classes = [renderers.JSONRenderer, JSONLinesRenderer, CSVRenderer]

    @extend_schema(
        parameters=_AUDIT_PARAMS,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
        },
    )
    def get(self, request: Request, file_format: str) -> StreamingHttpResponse:
        if file_format not in ("jsonl", "csv"):
            raise NotFound("Export as export.jsonl or export.csv.", code="unknown_format")
        rows = (
            selectors.audit_event_list(user=request.user, filters=_audit_filters(request))
            .order_by("sequence")
            .iterator(chunk_size=2000)
        )
        if file_format == "csv":
            response = StreamingHttpResponse(_csv(rows), content_type="text/csv; charset=utf-8")
        else:
            response = StreamingHttpResponse(_jsonl(rows), content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="audit.{file_format}"'
        return response


class MyPermissionsView(GovernanceView):
    """What the caller may do on one model: for clients that show or hide actions."""

    @extend_schema(responses=s.MyPermissionsOut)
    def get(self, request: Request, name: str) -> Response:
        registered_model = self.registered_model(name)
        return Response(
            {
                "model": registered_model.name,
                "permissions": {
                    p.name.lower(): permissions.has(request.user, p, registered_model) for p in Perm
                },
            }
        )
