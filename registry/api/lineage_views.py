"""REST endpoints for lineage records and deployments."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from core.views import choice
from registry import selectors, services
from registry.api import serializers as s
from registry.api.views import RegistryView
from registry.models import Deployment


class CatalogListView(RegistryView):
    """List and create one kind of lineage record (visible as far as the model versions it
    leads to: core.permissions.visible_lineage)."""

    ordering = "-created_at"
    ordering_fields = ("created_at", "-created_at")
    input_class: type[s.serializers.Serializer]
    output_class: type[s.serializers.Serializer]

    def rows(self) -> Any:
        raise NotImplementedError

    def create(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def get(self, request: Request) -> Response:
        return self.page(self.rows(), self.output_class)

    def post(self, request: Request) -> Response:
        obj = self.create(self.valid(self.input_class))
        # A new record leads to no version yet: without the whole catalogue its author cannot
        # read it back through the gate, and is shown what they wrote (which links only
        # records they can see).
        shown = self.rows().filter(pk=obj.pk).first() or obj
        return Response(self.output_class(shown).data, status=status.HTTP_201_CREATED)


class CatalogDetailView(RegistryView):
    output_class: type[s.serializers.Serializer]
    what: str

    def rows(self) -> Any:
        raise NotImplementedError

    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output_class(selectors.catalog_get(self.rows(), pk, self.what)).data)


def _catalog(
    name: str, input_class: Any, output_class: Any, rows: Any, create: Any, what: str
) -> tuple[type[CatalogListView], type[CatalogDetailView]]:
    list_view = type(
        f"{name}ListView",
        (CatalogListView,),
        {
            "input_class": input_class,
            "output_class": output_class,
            "rows": lambda self: rows(self),
            "create": lambda self, data: create(self, data),
        },
    )
    detail_view = type(
        f"{name}DetailView",
        (CatalogDetailView,),
        {"output_class": output_class, "what": what, "rows": lambda self: rows(self)},
    )
    extend_schema(methods=["GET"], responses=output_class(many=True))(list_view)
    extend_schema(methods=["POST"], request=input_class, responses={201: output_class})(list_view)
    extend_schema(responses=output_class)(detail_view)
    return list_view, detail_view


FeatureSourceListView, FeatureSourceDetailView = _catalog(
    "FeatureSource",
    s.FeatureSourceIn,
    s.FeatureSourceOut,
    lambda view: selectors.feature_source_list(user=view.request.user),
    lambda view, data: services.feature_source_create(actor=view.actor(), **data),
    "feature_source",
)
LogicalFeatureListView, LogicalFeatureDetailView = _catalog(
    "LogicalFeature",
    s.LogicalFeatureIn,
    s.LogicalFeatureOut,
    lambda view: selectors.logical_feature_list(user=view.request.user),
    lambda view, data: services.logical_feature_create(actor=view.actor(), **data),
    "feature",
)
DatasetListView, DatasetDetailView = _catalog(
    "Dataset",
    s.DatasetIn,
    s.DatasetOut,
    lambda view: selectors.dataset_list(user=view.request.user),
    lambda view, data: services.dataset_create(actor=view.actor(), **data),
    "dataset",
)
CodeRefListView, CodeRefDetailView = _catalog(
    "CodeRef",
    s.CodeRefIn,
    s.CodeRefOut,
    lambda view: selectors.code_ref_list(user=view.request.user),
    lambda view, data: services.code_ref_create(actor=view.actor(), **data),
    "code_ref",
)


def _create_run(view: RegistryView, data: dict[str, Any]) -> Any:
    datasets = [(d["dataset"], d["role"]) for d in data.pop("datasets")]
    return services.training_run_create(actor=view.actor(), datasets=datasets, **data)


TrainingRunListView, TrainingRunDetailView = _catalog(
    "TrainingRun",
    s.TrainingRunIn,
    s.TrainingRunOut,
    lambda view: selectors.training_run_list(user=view.request.user),
    _create_run,
    "training_run",
)


class DatasetModelsView(RegistryView):
    """Which model versions (that you may see) were trained on this dataset?"""

    ordering_fields = ("-created_at", "created_at")

    @extend_schema(responses=s.VersionRefOut(many=True))
    def get(self, request: Request, pk: int) -> Response:
        dataset = selectors.catalog_get(selectors.dataset_list(user=request.user), pk, "dataset")
        return self.page(
            selectors.models_trained_on(user=request.user, dataset=dataset), s.VersionRefOut
        )


class DeploymentListView(RegistryView):
    ordering = "-deployed_at"
    ordering_fields = ("deployed_at", "-deployed_at")

    @extend_schema(responses=s.DeploymentOut(many=True))
    def get(self, request: Request) -> Response:
        status_filter = choice(request, "status", Deployment.Status.values)
        return self.page(
            selectors.deployment_list(user=request.user, status=status_filter), s.DeploymentOut
        )

    @extend_schema(request=s.DeploymentIn, responses={201: s.DeploymentOut})
    def post(self, request: Request) -> Response:
        data = self.valid(s.DeploymentIn)
        version = self.version(data.pop("name"), data.pop("version"))
        deployment = services.deployment_create(actor=self.actor(), version=version, **data)
        return Response(
            s.DeploymentOut(selectors.deployment_get(user=request.user, pk=deployment.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class DeploymentDetailView(RegistryView):
    @extend_schema(responses=s.DeploymentOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.DeploymentOut(selectors.deployment_get(user=request.user, pk=pk)).data)


class DeploymentRetireView(RegistryView):
    @extend_schema(request=None, responses=s.DeploymentOut)
    def post(self, request: Request, pk: int) -> Response:
        deployment = selectors.deployment_get(user=request.user, pk=pk, retiring=True)
        retired = services.deployment_retire(actor=self.actor(), deployment=deployment)
        return Response(s.DeploymentOut(retired).data)
