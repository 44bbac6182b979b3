"""Admin for governance records. Audit events are read-only; tokens show no secret."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from governance import models as m
from registry.admin import ReadOnlyAdmin


@admin.register(m.AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "occurred_at", "actor_label", "channel", "action",
                    "registered_model_name", "target_label"]
    list_filter = ["action", "channel"]
    search_fields = ["actor_label", "action", "registered_model_name", "target_label",
                     "request_id"]
    date_hierarchy = "occurred_at"


@admin.register(m.ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at",
                    "revoked_at"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "prefix"]
    list_filter = ["revoked_at", "expires_at"]
    exclude = ["digest"]


class _GrantAdmin(ReadOnlyAdmin):
    list_filter = ["permission"]

    def get_list_select_related(self, request: HttpRequest) -> Any:
        return ["content_object", "permission"]


@admin.register(m.RegisteredModelUserPermission)
class UserGrantAdmin(_GrantAdmin):
    list_display = ["content_object", "user", "permission"]
    search_fields = ["content_object__name", "user__username"]


@admin.register(m.RegisteredModelGroupPermission)
class GroupGrantAdmin(_GrantAdmin):
    list_display = ["content_object", "group", "permission"]
    search_fields = ["content_object__name", "group__name"]
