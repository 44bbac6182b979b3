"""Routes appended to the app's urls module (same namespace); filled by the feature's owner."""

from django.urls import URLPattern, path  # noqa: F401

urlpatterns: list[URLPattern] = []
