from django.urls import path

from cards.api import views as v

app_name = "cards-api"
C = "models/<mname:name>/versions/<int:number>/card/"
urlpatterns = [
    path(C, v.CardDetailView.as_view(), name="card-detail"),
    path(f"{C}revisions/", v.CardRevisionsView.as_view(), name="card-revisions"),
    path(f"{C}revisions/<int:revision>/restore/", v.CardRestoreView.as_view(), name="card-restore"),
    path(f"{C}diff/", v.CardDiffView.as_view(), name="card-diff"),
    path(f"{C}submit/", v.CardSubmitView.as_view(), name="card-submit"),
    path(f"{C}reviews/", v.CardReviewView.as_view(), name="card-review"),
    path(f"{C}import/", v.CardImportView.as_view(), name="card-import"),
    path(f"{C}export.<str:file_format>", v.CardExportView.as_view(), name="card-export"),
    path("markdown/preview/", v.MarkdownPreviewView.as_view(), name="markdown-preview"),
]
