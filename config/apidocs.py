"""The OpenAPI schema and its docs page, behind login unless API_DOCS_PUBLIC opens them.

The schema names every endpoint, parameter and error code; anonymous visitors need none of it
to use the site, so it is for signed-in users (a session, or an API token for tools) unless an
operator publishes it. The docs page runs Swagger UI under the site's Content-Security-Policy:
its start-up script is served as a file (drf-spectacular's split view) and its page template
links a stylesheet instead of an inline <style>.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


def _permissions() -> list[BasePermission]:
    return [AllowAny()] if settings.API_DOCS_PUBLIC else [IsAuthenticated()]


class SchemaView(SpectacularAPIView):
    def get_permissions(self) -> list[BasePermission]:
        return _permissions()

    def handle_exception(self, exc: Exception) -> Response:
        # A refusal leaves as JSON with a code like every API error, not in the schema's YAML.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class DocsView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"
    url_name = "api-schema"

    def get_permissions(self) -> list[BasePermission]:
        return _permissions()

    # DRF takes any HttpResponseBase here (finalize_response checks that); the stubs say
    # Response, which a redirect to the sign-in page is not.
    def handle_exception(self, exc: Exception) -> HttpResponseBase:  # type: ignore[override]
        if isinstance(exc, NotAuthenticated | AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())  # a page: sign in first
        return super().handle_exception(exc)

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
