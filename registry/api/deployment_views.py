"""A model's deployments and the deployment check, for automation and dashboards."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.serializers import username
from core.views import choice
from registry import deployments, selectors
from registry.api import serializers as s
from registry.api.views import RegistryView
from registry.models import Deployment


class ModelDeploymentOut(s.DeploymentOut):
    retired_by = serializers.SerializerMethodField()

    def get_retired_by(self, obj: Deployment) -> str | None:
        return username(obj.retired_by)


class DeploymentFindingOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=deployments.KINDS)
    version = serializers.IntegerField()
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True)
    environment = serializers.CharField(allow_null=True)
    target = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ModelDeploymentsOut(serializers.Serializer):
    deployments = ModelDeploymentOut(many=True)
    findings = DeploymentFindingOut(many=True)


class ModelDeploymentsView(RegistryView):
    """Where the model's versions serve (active and retired, newest first) and what the
    deployment check finds: production versions with no active deployment in a production
    environment, and active production deployments of versions no longer approved."""

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=list(Deployment.Status.values)),
        ],
        responses=ModelDeploymentsOut,
    )
    def get(self, request: Request, name: str) -> Response:
        status_filter = choice(request, "status", Deployment.Status.values)
        registered_model = selectors.registered_model_get(
            user=request.user, name=name, details=False
        )
        rows = deployments.model_deployment_list(
            user=request.user, registered_model=registered_model, status=status_filter
        )
        body: dict[str, Any] = {
            "deployments": list(rows),
            "findings": deployments.deployment_findings(
                user=request.user, registered_model=registered_model
            ),
        }
        return Response(ModelDeploymentsOut(body).data)
