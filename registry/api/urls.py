from django.urls import path

import core.converters  # noqa: F401  (registers "mname")
from registry.api import bulk_urls, deployment_urls
from registry.api import graph_views as gv
from registry.api import lineage_views as lv
from registry.api import views as v

app_name = "registry-api"
M = "models/<mname:name>"
V = f"{M}/versions/<int:number>"
urlpatterns = [
    path("models/", v.ModelListView.as_view(), name="model-list"),
    path(f"{M}/", v.ModelDetailView.as_view(), name="model-detail"),
    path(f"{M}/tags/<str:key>/", v.ModelTagView.as_view(), name="model-tag"),
    path(f"{M}/aliases/", v.AliasListView.as_view(), name="alias-list"),
    path(f"{M}/aliases/<str:alias>/", v.AliasDetailView.as_view(), name="alias-detail"),
    path(f"{M}/compare/", v.ModelCompareView.as_view(), name="model-compare"),
    path(f"{M}/resolve/", v.ModelResolveView.as_view(), name="model-resolve"),
    path(f"{M}/versions/", v.VersionListView.as_view(), name="version-list"),
    path(f"{V}/", v.VersionDetailView.as_view(), name="version-detail"),
    path(f"{V}/stage/", v.VersionStageView.as_view(), name="version-stage"),
    path(f"{V}/tags/<str:key>/", v.VersionTagView.as_view(), name="version-tag"),
    path(f"{V}/metrics/", v.VersionMetricsView.as_view(), name="version-metrics"),
    path(f"{V}/evaluations/", v.VersionEvaluationsView.as_view(), name="version-evaluations"),
    path(f"{V}/validate/", v.VersionValidateView.as_view(), name="version-validate"),
    path(f"{V}/artifacts/", v.ArtifactListView.as_view(), name="artifact-list"),
    path(
        f"{V}/artifacts/<int:artifact_id>/", v.ArtifactDetailView.as_view(), name="artifact-detail"
    ),
    path(
        f"{V}/artifacts/<int:artifact_id>/download/",
        v.ArtifactDownloadView.as_view(),
        name="artifact-download",
    ),
    path(f"{V}/jobs/", v.JobListView.as_view(), name="job-list"),
    path(f"{V}/jobs/<int:job_id>/", v.JobDetailView.as_view(), name="job-detail"),
    path(f"{V}/jobs/<int:job_id>/cancel/", v.JobCancelView.as_view(), name="job-cancel"),
    path("versions/", v.VersionSearchView.as_view(), name="version-search"),
    path("feature-sources/", lv.FeatureSourceListView.as_view(), name="feature-source-list"),
    path(
        "feature-sources/<int:pk>/",
        lv.FeatureSourceDetailView.as_view(),
        name="feature-source-detail",
    ),
    path("features/", lv.LogicalFeatureListView.as_view(), name="feature-list"),
    path("features/<int:pk>/", lv.LogicalFeatureDetailView.as_view(), name="feature-detail"),
    path("datasets/", lv.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", lv.DatasetDetailView.as_view(), name="dataset-detail"),
    path(
        "datasets/<int:pk>/model-versions/", lv.DatasetModelsView.as_view(), name="dataset-models"
    ),
    path("code-refs/", lv.CodeRefListView.as_view(), name="code-ref-list"),
    path("code-refs/<int:pk>/", lv.CodeRefDetailView.as_view(), name="code-ref-detail"),
    path("training-runs/", lv.TrainingRunListView.as_view(), name="training-run-list"),
    path("training-runs/<int:pk>/", lv.TrainingRunDetailView.as_view(), name="training-run-detail"),
    path("lineage/<str:kind>/<int:pk>/graph/", gv.LineageGraphView.as_view(), name="lineage-graph"),
    path(
        "lineage/<str:kind>/<int:pk>/impact/", gv.LineageImpactView.as_view(), name="lineage-impact"
    ),
    path("deployments/", lv.DeploymentListView.as_view(), name="deployment-list"),
    path("deployments/<int:pk>/", lv.DeploymentDetailView.as_view(), name="deployment-detail"),
    path(
        "deployments/<int:pk>/retire/", lv.DeploymentRetireView.as_view(), name="deployment-retire"
    ),
]
urlpatterns += bulk_urls.urlpatterns + deployment_urls.urlpatterns
