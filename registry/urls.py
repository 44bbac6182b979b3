from django.urls import path

import core.converters  # noqa: F401  (registers "mname")
from registry import deployment_views, lineage_views, views

app_name = "registry"
urlpatterns = [
    path("", views.home, name="home"),
    path("models/", views.model_list, name="model-list"),
    path("models/<mname:name>/", views.model_detail, name="model-detail"),
    path("models/<mname:name>/compare/", views.compare, name="compare"),
    path("models/<mname:name>/versions/<int:number>/", views.version_detail, name="version-detail"),
    path(
        "models/<mname:name>/versions/<int:number>/jobs/",
        views.version_job_start,
        name="version-job-start",
    ),
    path(
        "models/<mname:name>/deployments/<int:pk>/retire/",
        deployment_views.deployment_retire_page,
        name="deployment-retire",
    ),
    path("lineage/", lineage_views.lineage_index, name="lineage-index"),
    path("lineage/<str:kind>/<int:pk>/", lineage_views.lineage, name="lineage"),
    path(
        "lineage/<str:kind>/<int:pk>/impact/", lineage_views.lineage_impact, name="lineage-impact"
    ),
    path(
        "models/<mname:name>/versions/<int:number>/artifacts/<int:artifact_id>/",
        views.artifact_download,
        name="artifact-download",
    ),
]
