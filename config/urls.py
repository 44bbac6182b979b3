from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import apidocs

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Single sign-on (OpenID Connect); every URL here is a 404 while it is not configured.
    path("oidc/", include("governance.oidc")),
    path("api/v1/", include("registry.api.urls")),
    path("api/v1/", include("governance.api.urls")),
    path("api/v1/", include("cards.api.urls")),
    # MLflow's model-registry REST API, for the unmodified MLflow client.
    path("api/2.0/", include("governance.mlflow_api.urls")),
    # Behind login unless API_DOCS_PUBLIC; the docs page's script is served as a file (CSP).
    path("api/schema/", apidocs.SchemaView.as_view(), name="api-schema"),
    path("api/docs/", apidocs.DocsView.as_view(), name="api-docs"),
    path("", include("cards.urls")),
    path("", include("governance.urls")),
    path("", include("registry.urls")),
]

handler400 = "config.views.bad_request"
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
