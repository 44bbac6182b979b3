from django.urls import path

from cards import views

app_name = "cards"
C = "models/<mname:name>/versions/<int:number>/card/"
urlpatterns = [
    path(C, views.card_detail, name="card"),
    path(f"{C}edit/", views.card_edit, name="card-edit"),
    path(f"{C}history/", views.card_history, name="card-history"),
    path(f"{C}submit/", views.card_submit, name="card-submit"),
    path(f"{C}review/", views.card_review, name="card-review"),
    path(f"{C}revisions/<int:revision>/restore/", views.card_restore, name="card-restore"),
    path(f"{C}import/", views.card_import, name="card-import"),
    path(f"{C}export.<str:file_format>", views.card_export, name="card-export"),
]
