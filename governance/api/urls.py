from django.urls import path

from governance.api import scorecard_urls
from governance.api import views as v

app_name = "governance-api"
M = "models/<mname:name>"
urlpatterns = [
    path(
        "promotion-requests/", v.PromotionRequestListView.as_view(), name="promotion-request-list"
    ),
    path(
        "promotion-requests/<int:pk>/",
        v.PromotionRequestDetailView.as_view(),
        name="promotion-request-detail",
    ),
    path(
        "promotion-requests/<int:pk>/reviews/",
        v.PromotionReviewView.as_view(),
        name="promotion-request-review",
    ),
    path(
        "promotion-requests/<int:pk>/apply/",
        v.PromotionApplyView.as_view(),
        name="promotion-request-apply",
    ),
    path(
        "promotion-requests/<int:pk>/cancel/",
        v.PromotionCancelView.as_view(),
        name="promotion-request-cancel",
    ),
    path(f"{M}/rollback/", v.ModelRollbackView.as_view(), name="model-rollback"),
    path(f"{M}/policy/", v.ModelPolicyView.as_view(), name="model-policy"),
    path(f"{M}/history/", v.ModelHistoryView.as_view(), name="model-history"),
    path(f"{M}/compliance/", v.ModelComplianceView.as_view(), name="model-compliance"),
    path(f"{M}/my-permissions/", v.MyPermissionsView.as_view(), name="model-my-permissions"),
    path("audit/events/", v.AuditEventListView.as_view(), name="audit-event-list"),
    path(
        "audit/events/export.<str:file_format>",
        v.AuditExportView.as_view(),
        name="audit-event-export",
    ),
]
urlpatterns += scorecard_urls.urlpatterns
