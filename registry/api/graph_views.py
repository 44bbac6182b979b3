"""The lineage graph and impact analysis as JSON (registry.lineage_graph does the work)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from registry import lineage_graph
from registry.api.views import RegistryView

_NODE = inline_serializer(
    "LineageNode",
    {
        "id": serializers.CharField(help_text="kind:pk, or kind:more for folded records"),
        "kind": serializers.ChoiceField(choices=lineage_graph.KINDS),
        "pk": serializers.IntegerField(allow_null=True),
        "label": serializers.CharField(),
        "detail": serializers.CharField(allow_blank=True),
        "url": serializers.CharField(allow_null=True, help_text="The record's page"),
        "distance": serializers.IntegerField(help_text="Steps from the start; negative upstream"),
        "count": serializers.IntegerField(help_text="Records a folded node stands for"),
        "attributes": serializers.DictField(),
    },
)
_GRAPH = inline_serializer(
    "LineageGraph",
    {
        "root": serializers.CharField(),
        "depth": serializers.IntegerField(),
        "collapsed": serializers.ListField(child=serializers.CharField()),
        "truncated": serializers.BooleanField(),
        "nodes": _NODE.__class__(many=True),
        "edges": inline_serializer(
            "LineageEdge",
            {
                "from": serializers.CharField(),
                "to": serializers.CharField(),
                "role": serializers.CharField(allow_blank=True),
            },
            many=True,
        ),
    },
)
_IMPACT = inline_serializer(
    "LineageImpact",
    {
        "starts": _NODE.__class__(many=True),
        "summary": serializers.DictField(child=serializers.IntegerField()),
        "truncated": serializers.BooleanField(),
        "results": inline_serializer(
            "LineageImpactResult",
            {
                "model": serializers.CharField(),
                "version": serializers.IntegerField(),
                "stage": serializers.CharField(),
                "in_production": serializers.BooleanField(),
                "aliases": serializers.ListField(child=serializers.CharField()),
                "protected_aliases": serializers.ListField(child=serializers.CharField()),
                "deployments": serializers.ListField(child=serializers.DictField()),
                "approved": serializers.BooleanField(
                    help_text="May serve in production: in production or holding a protected alias"
                ),
                "url": serializers.CharField(),
                "path": _NODE.__class__(many=True),
            },
            many=True,
        ),
    },
)
_KIND = OpenApiParameter(
    "kind", str, OpenApiParameter.PATH, enum=lineage_graph.KINDS, description="Kind of record"
)


class LineageGraphView(RegistryView):
    """A record's ancestors and descendants, as far as you may see them."""

    @extend_schema(
        parameters=[
            _KIND,
            OpenApiParameter("depth", int, description="Steps each way, 1–5 (default 5)"),
            OpenApiParameter(
                "collapse", str, many=True, description="Kinds drawn as one node (repeatable)"
            ),
            OpenApiParameter("limit", int, description="Records of a kind before the rest fold"),
        ],
        responses=_GRAPH,
    )
    def get(self, request: Request, kind: str, pk: int) -> Response:
        options = lineage_graph.GraphOptions.parse(request.query_params)
        shown = lineage_graph.graph(
            request.user,
            kind,
            pk,
            depth=options.depth,
            collapse=options.collapse,
            limit=options.limit,
        )
        return Response(lineage_graph.graph_json(shown))


class LineageImpactView(RegistryView):
    """Which model versions depend on a record, across every hop, and how they serve."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                OpenApiParameter.PATH,
                enum=lineage_graph.IMPACT_KINDS,
                description="Kind of record",
            ),
            OpenApiParameter(
                "only", str, enum=lineage_graph.IMPACT_FILTERS, description="Keep only these"
            ),
            OpenApiParameter(
                "all_versions", bool, description="For a dataset: any version of that name"
            ),
        ],
        responses=_IMPACT,
    )
    def get(self, request: Request, kind: str, pk: int) -> Response:
        all_versions, only = lineage_graph.impact_options(request.query_params)
        found = lineage_graph.impact(request.user, kind, pk, all_versions=all_versions, only=only)
        return Response(lineage_graph.impact_json(found))
