"""Admin for the registry. Edits with business meaning (stages, deletion, restore, purge) go
through services; fields the server owns are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core import permissions
from core.actors import Actor
from core.admin import ModelScoped, ReadOnlyAdmin, run_service
from core.errors import DomainError
from core.refusals import refused
from registry import models as m
from registry import panels, services


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class RegisteredModelTagInline(admin.TabularInline):
    model = m.RegisteredModelTag
    extra = 0
    can_delete = False
    readonly_fields = ["key", "value"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(m.RegisteredModel)
class RegisteredModelAdmin(ModelScoped):
    list_display = [
        "name",
        "owner",
        "team",
        "risk_tier",
        "last_version_number",
        "updated_at",
        "deleted_at",
        "compliance_link",
    ]
    list_filter = [DeletedFilter, "risk_tier", "team"]
    list_select_related = ["owner", "team"]
    search_fields = ["name", "description", "owner__username"]
    autocomplete_fields = ["owner", "team"]
    readonly_fields = [
        "name",
        "metric_directions",  # set through the API (PATCH the model), where the rules live
        "last_version_number",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
        "deleted_at",
        "deleted_by",
    ]
    fields = ["name", "description", "owner", "team", "risk_tier", *readonly_fields[1:]]
    inlines = [RegisteredModelTagInline]
    actions = ["soft_delete", "restore", "purge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # create through the API or the dashboard, where the rules live

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        if obj is None or permissions.is_superuser(request.user):
            return allowed
        return allowed and permissions.has(request.user, permissions.Perm.CHANGE, obj)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/compliance/",
                self.admin_site.admin_view(self.compliance_view),
                name="registry_registeredmodel_compliance",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="compliance")
    def compliance_link(self, obj: m.RegisteredModel) -> str:
        return format_html(
            '<a href="{}">report</a>',
            reverse("admin:registry_registeredmodel_compliance", args=[obj.pk]),
        )

    def compliance_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        registered_model = get_object_or_404(self.get_queryset(request), pk=pk)
        return TemplateResponse(
            request,
            "admin/registry/compliance.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Compliance report: {registered_model.name}",
                "original": registered_model,
                **panels.context("compliance", registered_model=registered_model),
            },
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # use the actions: soft delete first, purge only what is deleted

    def save_model(
        self, request: HttpRequest, obj: m.RegisteredModel, form: Any, change: bool
    ) -> None:
        original = m.RegisteredModel.objects.get(pk=obj.pk)
        try:
            services.registered_model_update(
                actor=Actor.from_request(request, channel="admin"),
                registered_model=original,
                **{f: form.cleaned_data[f] for f in form.changed_data},
            )
        except DomainError as exc:  # e.g. a risk tier only an administrator may change
            refused(request, exc)
            messages.error(request, exc.message)
            request._modelgate_refused = True  # type: ignore[attr-defined]

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "_modelgate_refused", False):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if getattr(request, "_modelgate_refused", False):  # nothing saved; the message says why
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.action(description="Delete (soft) selected models")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.registered_model_delete, "Deleted")

    @admin.action(description="Restore selected deleted models")
    def restore(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.registered_model_restore, "Restored")

    @admin.action(description="Purge selected deleted models for good")
    def purge(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.registered_model_purge, "Purged")


class MetricInline(admin.TabularInline):
    model = m.ModelVersionMetric
    extra = 0
    can_delete = False
    readonly_fields = ["name", "value", "dataset", "split"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ArtifactInline(admin.TabularInline):
    model = m.Artifact
    fk_name = "version"
    extra = 0
    can_delete = False
    fields = readonly_fields = ("filename", "format", "size", "sha256", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(m.ModelVersion)
class ModelVersionAdmin(ModelScoped):
    list_display = ["__str__", "stage", "status", "created_by", "created_at", "deleted_at"]
    list_filter = [DeletedFilter, "stage", "status", "flavor"]
    list_select_related = ["registered_model", "created_by"]
    search_fields = ["registered_model__name", "run_id", "source"]
    readonly_fields = [f.name for f in m.ModelVersion._meta.fields]
    inlines = [MetricInline, ArtifactInline]
    actions = ["soft_delete", "restore", "purge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Delete (soft) selected versions")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.version_delete, "Deleted", param="version")

    @admin.action(description="Restore selected deleted versions")
    def restore(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.version_restore, "Restored", param="version")

    @admin.action(description="Purge selected deleted versions for good")
    def purge(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.version_purge, "Purged", param="version")


@admin.register(m.Alias)
class AliasAdmin(ReadOnlyAdmin):
    list_display = ["registered_model", "name", "version", "updated_at", "updated_by"]
    list_select_related = ["registered_model", "version__registered_model", "updated_by"]
    search_fields = ["registered_model__name", "name"]
    list_filter = ["name"]


@admin.register(m.Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = [
        "filename",
        "version",
        "format",
        "size",
        "safety",
        "trusted_at",
        "sha256",
        "created_at",
    ]
    actions = ["trust"]

    @admin.action(description="Trust selected files (workers may load them despite the scan)")
    def trust(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(request, queryset, services.artifact_trust, "Trusted", param="artifact")

    list_select_related = ["version__registered_model"]
    search_fields = ["filename", "sha256", "version__registered_model__name"]
    list_filter = ["format", "safety"]


@admin.register(m.FeatureSource)
class FeatureSourceAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "uri", "created_at"]
    search_fields = ["name", "uri"]
    list_filter = ["kind"]


@admin.register(m.LogicalFeature)
class LogicalFeatureAdmin(ReadOnlyAdmin):
    list_display = ["name", "source", "dtype"]
    list_select_related = ["source"]
    search_fields = ["name", "source__name"]
    list_filter = ["dtype"]


@admin.register(m.Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "uri", "digest", "created_at"]
    search_fields = ["name", "uri", "digest"]
    list_filter = ["created_at"]


@admin.register(m.CodeRef)
class CodeRefAdmin(ReadOnlyAdmin):
    list_display = ["repository", "commit", "path"]
    search_fields = ["repository", "commit", "path"]
    list_filter = ["repository"]


class RunDatasetInline(admin.TabularInline):
    model = m.TrainingRunDataset
    extra = 0


@admin.register(m.TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["run_id", "name", "status", "code_ref", "started_at", "ended_at"]
    list_select_related = ["code_ref"]
    search_fields = ["run_id", "name"]
    list_filter = ["status"]
    inlines = [RunDatasetInline]


@admin.register(m.Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["version", "environment", "target", "status", "deployed_at", "retired_at"]
    list_select_related = ["version__registered_model"]
    search_fields = ["version__registered_model__name", "environment", "target"]
    list_filter = ["status", "environment"]
