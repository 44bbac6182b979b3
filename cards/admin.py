"""Cards in the admin: read-only; edits and reviews go through the card pages and API, where
revisions, separation of duties and the audit trail apply."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from cards import models as m
from core.admin import ReadOnlyAdmin


class RevisionInline(admin.TabularInline):
    model = m.CardRevision
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "author", "note", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(m.ModelCard)
class ModelCardAdmin(ReadOnlyAdmin):
    list_display = ["version", "status", "revision", "last_edited_by", "updated_at"]
    list_filter = ["status"]
    list_select_related = ["version__registered_model", "last_edited_by"]
    search_fields = ["registered_model__name"]
    inlines = [RevisionInline]


@admin.register(m.CardReview)
class CardReviewAdmin(ReadOnlyAdmin):
    list_display = ["card", "revision", "reviewer", "decision", "created_at"]
    list_filter = ["decision"]
    list_select_related = ["card__version__registered_model", "reviewer"]
