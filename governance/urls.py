from django.urls import path

import core.converters  # noqa: F401  (registers "mname")
from governance import scorecard_urls, views

app_name = "governance"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("requests/", views.request_list, name="request-list"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/new/checks/", views.request_checks, name="request-checks"),
    path("requests/<int:pk>/", views.request_detail, name="request-detail"),
    path("requests/<int:pk>/review/", views.request_review, name="request-review"),
    path("requests/<int:pk>/cancel/", views.request_cancel, name="request-cancel"),
    path("requests/<int:pk>/apply/", views.request_apply, name="request-apply"),
    path("audit/", views.audit_log, name="audit-log"),
    path("models/<mname:name>/access/", views.model_access, name="model-access"),
    path("models/<mname:name>/compliance/", views.model_compliance, name="model-compliance"),
]
urlpatterns += scorecard_urls.urlpatterns
