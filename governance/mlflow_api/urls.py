"""MLflow's model-registry routes, mounted at /api/2.0/ by config/urls.py."""

from django.urls import path

from governance.mlflow_api import downloads
from governance.mlflow_api import views as v

R = "mlflow/registered-models"
MV = "mlflow/model-versions"

urlpatterns = [
    path(f"{R}/create", v.RegisteredModelCreate.as_view()),
    path(f"{R}/get", v.RegisteredModelGet.as_view()),
    path(f"{R}/rename", v.RegisteredModelRename.as_view()),
    path(f"{R}/update", v.RegisteredModelUpdate.as_view()),
    path(f"{R}/delete", v.RegisteredModelDelete.as_view()),
    path(f"{R}/search", v.RegisteredModelSearch.as_view()),
    path(f"{R}/get-latest-versions", v.LatestVersions.as_view()),
    path(f"{R}/set-tag", v.RegisteredModelSetTag.as_view()),
    path(f"{R}/delete-tag", v.RegisteredModelDeleteTag.as_view()),
    path(f"{R}/alias", v.Alias.as_view()),
    path(f"{MV}/create", v.VersionCreate.as_view()),
    path(f"{MV}/get", v.VersionGet.as_view()),
    path(f"{MV}/update", v.VersionUpdate.as_view()),
    path(f"{MV}/delete", v.VersionDelete.as_view()),
    path(f"{MV}/transition-stage", v.VersionTransitionStage.as_view()),
    path(f"{MV}/search", v.VersionSearch.as_view()),
    path(f"{MV}/get-download-uri", v.VersionDownloadUri.as_view()),
    path(f"{MV}/set-tag", v.VersionSetTag.as_view()),
    path(f"{MV}/delete-tag", v.VersionDeleteTag.as_view()),
    # MLflow's artifact protocol, for the bundles get-download-uri points at.
    *downloads.urlpatterns,
]
