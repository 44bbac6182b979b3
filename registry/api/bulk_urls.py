"""Routes appended to the app's urls module (same namespace); filled by the feature's owner."""

from django.urls import URLPattern, path

from registry.api.bulk_views import LineageRegisterView

urlpatterns: list[URLPattern] = [
    path("lineage/register/", LineageRegisterView.as_view(), name="lineage-register"),
]
