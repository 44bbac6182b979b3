"""Routes appended to the app's urls module (same namespace); filled by the feature's owner."""

from django.urls import URLPattern, path

import core.converters  # noqa: F401  (registers "mname")
from registry.api import deployment_views as dv

M = "models/<mname:name>"

urlpatterns: list[URLPattern] = [
    path(f"{M}/deployments/", dv.ModelDeploymentsView.as_view(), name="model-deployments"),
]
