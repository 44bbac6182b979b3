"""The maturity scorecard's API: the organisation, a team, a model, the trend and an export.

Everything counts only the models the caller may view, computed live; the trend comes from
daily snapshots that count every model, so only callers who may view the whole organisation
get it (403 otherwise).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import DownloadRenderer
from core.edge import whole_number
from core.errors import Forbidden, ValidationFailed
from core.views import ApiView
from governance.maturity import scorecard, snapshots
from registry.selectors import registered_model_get

DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
MAX_TREND_DAYS = 3660


# --- Schema -----------------------------------------------------------------------------------


class DistributionOut(serializers.Serializer):
    missing = serializers.IntegerField()
    partial = serializers.IntegerField()  # type: ignore[assignment]
    complete = serializers.IntegerField()
    not_applicable = serializers.IntegerField()


class ScoredDistributionOut(DistributionOut):
    score = serializers.FloatField(allow_null=True)


class GroupOut(serializers.Serializer):
    team_id = serializers.IntegerField(
        allow_null=True, help_text="null: the organisation; 0: no team"
    )
    name = serializers.CharField()
    models = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
    distribution = DistributionOut()
    domains = serializers.DictField(child=ScoredDistributionOut())
    metrics = serializers.DictField(child=ScoredDistributionOut(), required=False)


class ModelMetricOut(serializers.Serializer):
    key = serializers.CharField()
    domain = serializers.CharField()
    title = serializers.CharField()
    bucket = serializers.IntegerField(allow_null=True, help_text="0, 1, 2; null: not applicable")
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    meaning = serializers.CharField()
    fix_url = serializers.CharField(allow_null=True)


class ModelScoreOut(serializers.Serializer):
    name = serializers.CharField()
    team_id = serializers.IntegerField(allow_null=True)
    team = serializers.CharField(allow_null=True)
    focus_version = serializers.IntegerField(allow_null=True)
    focus_stage = serializers.CharField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    distribution = DistributionOut()
    domains = serializers.DictField(child=ScoredDistributionOut())
    metrics = ModelMetricOut(many=True)


class BucketOut(serializers.Serializer):
    bucket = serializers.IntegerField(allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    meaning = serializers.CharField()


class CatalogueMetricOut(serializers.Serializer):
    key = serializers.CharField()
    domain = serializers.CharField()
    title = serializers.CharField()
    buckets = BucketOut(many=True)


class ScorecardOut(serializers.Serializer):
    taken_at = serializers.DateTimeField()
    catalogue = CatalogueMetricOut(many=True)
    organisation = GroupOut()
    teams = GroupOut(many=True)
    models = ModelScoreOut(many=True, help_text="Worst first, at most `limit`")
    models_total = serializers.IntegerField()
    trend_available = serializers.BooleanField()


class TeamScorecardOut(serializers.Serializer):
    taken_at = serializers.DateTimeField()
    team = GroupOut()
    models = ModelScoreOut(many=True)
    models_total = serializers.IntegerField()


class ModelScorecardOut(ModelScoreOut):
    taken_at = serializers.DateTimeField()


class TrendPointOut(serializers.Serializer):
    taken_on = serializers.DateField()
    models = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
    distribution = DistributionOut()
    domains = serializers.DictField(child=serializers.FloatField(allow_null=True))


class TrendOut(serializers.Serializer):
    team_id = serializers.IntegerField(allow_null=True)
    days = serializers.IntegerField()
    points = TrendPointOut(many=True)


class ExportRowOut(serializers.Serializer):
    model = serializers.CharField()
    team = serializers.CharField()
    focus_version = serializers.IntegerField(allow_null=True)
    focus_stage = serializers.CharField(allow_null=True)
    domain = serializers.CharField()
    metric = serializers.CharField()
    title = serializers.CharField()
    bucket = serializers.IntegerField(allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    meaning = serializers.CharField()


# --- Views ------------------------------------------------------------------------------------


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if not raw:
        return DEFAULT_LIMIT
    value = whole_number(raw, "limit", code="invalid_filter")
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be between 1 and {MAX_LIMIT}.", field="limit", code="invalid_filter"
        )
    return value


def _models(card: scorecard.Scorecard, limit: int) -> list[dict[str, Any]]:
    return [scorecard.model_data(m) for m in card.models[:limit]]


_LIMIT = OpenApiParameter("limit", int, description=f"Worst models listed (1-{MAX_LIMIT})")


class ScorecardView(ApiView):
    """The organisation's scorecard as the caller may see it."""

    pagination_class = None

    @extend_schema(parameters=[_LIMIT], responses=ScorecardOut)
    def get(self, request: Request) -> Response:
        limit = _limit(request)
        card = scorecard.scorecard_for(request.user)
        return Response(
            {
                "taken_at": card.taken_at,
                "catalogue": scorecard.catalogue_data(card.catalogue),
                "organisation": scorecard.group_data(card.organisation),
                "teams": [scorecard.group_data(t) for t in card.teams],
                "models": _models(card, limit),
                "models_total": len(card.models),
                "trend_available": snapshots.may_see_trends(request.user),
            }
        )


class TeamScorecardView(ApiView):
    pagination_class = None

    @extend_schema(
        parameters=[_LIMIT],
        responses=TeamScorecardOut,
        description="A team's scorecard (team 0: the models without a team).",
    )
    def get(self, request: Request, team_id: int) -> Response:
        limit = _limit(request)
        card = scorecard.scorecard_for(request.user, team=team_id)
        group = card.organisation
        group.team_id, group.name = team_id, scorecard.team_name(card, team_id)
        return Response(
            {
                "taken_at": card.taken_at,
                "team": scorecard.group_data(group),
                "models": _models(card, limit),
                "models_total": len(card.models),
            }
        )


class ModelScorecardView(ApiView):
    pagination_class = None

    @extend_schema(responses=ModelScorecardOut)
    def get(self, request: Request, name: str) -> Response:
        registered_model = registered_model_get(user=request.user, name=name, details=False)
        card = scorecard.scorecard_for(request.user, registered_model=registered_model)
        return Response({"taken_at": card.taken_at, **scorecard.model_data(card.models[0])})


class TrendView(ApiView):
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("team", int, description="A team id (0: no team); else the whole"),
            OpenApiParameter("days", int, description="How far back (default 90)"),
        ],
        responses=TrendOut,
        description="Daily snapshots; they count every model, so only for users who may view "
        "the whole organisation (403 otherwise).",
    )
    def get(self, request: Request) -> Response:
        if not snapshots.may_see_trends(request.user):
            raise Forbidden(
                "Trends count every model: only users who may view the whole organisation "
                "see them.",
                code="permission_denied",
            )
        raw_team = request.query_params.get("team")
        team = whole_number(raw_team, "team", code="invalid_filter") if raw_team else None
        raw_days = request.query_params.get("days")
        days = (
            whole_number(raw_days, "days", code="invalid_filter")
            if raw_days
            else snapshots.TREND_DAYS
        )
        if not 1 <= days <= MAX_TREND_DAYS:
            raise ValidationFailed(
                f"days must be between 1 and {MAX_TREND_DAYS}.", field="days", code="invalid_filter"
            )
        points = snapshots.trend(team=team, days=days)
        return Response(
            {
                "team_id": team,
                "days": days,
                "points": [
                    {
                        "taken_on": p.taken_on,
                        "models": p.models,
                        "score": p.score,
                        "distribution": p.distribution,
                        "domains": p.domains,
                    }
                    for p in points
                ],
            }
        )


class CSVRenderer(DownloadRenderer):
    media_type, format = "text/csv", "csv"


# Spreadsheets run a cell that starts with one of these as a formula (OWASP's list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a leading quote before a formula's first sign."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return f"'{value}"
    return "" if value is None else value


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(scorecard.EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([spreadsheet_safe(row[c]) for c in scorecard.EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


class ExportView(ApiView):
    """One row per model × metric, worst models first."""

    pagination_class = None
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ?format= is DRF's renderer override: an unknown one is a 400, not DRF's bare 404.
        if not force and request.query_params.get("format", "json") not in ("json", "csv"):
            raise ValidationFailed(
                "format must be csv or json.", field="format", code="invalid_filter"
            )
        return super().perform_content_negotiation(request, force)

    def handle_exception(self, exc: Exception) -> Any:
        # Errors are JSON whatever format was asked for (the CSV renderer writes rows only).
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "json"])],
        responses={
            (200, "application/json"): ExportRowOut(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
        },
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        card = scorecard.scorecard_for(request.user)
        rows = scorecard.export_rows(card)
        # ?format=csv or Accept: text/csv (the renderer content negotiation chose)
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(_csv(rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="scorecard.csv"'
            return response
        response_json = Response(list(rows))
        response_json["Content-Disposition"] = 'attachment; filename="scorecard.json"'
        return response_json
