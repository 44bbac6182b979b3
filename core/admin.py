"""The admin's kernel: the model-scoped and read-only bases every app's admin stands on, the
helper that runs a service over selected rows, and the audit log and API tokens."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core import audit, permissions
from core.actors import Actor
from core.errors import DomainError, ValidationFailed
from core.models import ApiToken, AuditEvent
from core.refusals import refused
from core.tokens import token_create, token_fields, token_revoke


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, channel="admin")


def run_service(
    request: HttpRequest,
    queryset: QuerySet[Any],
    service: Any,
    what: str,
    param: str = "registered_model",
) -> None:
    """Apply a service to each selected row (passed as `param`); report successes and
    refusals."""
    actor = Actor.from_request(request, channel="admin")
    done = 0
    for obj in queryset:
        try:
            service(actor=actor, **{param: obj})
            done += 1
        except DomainError as exc:
            refused(request, exc)
            messages.error(request, f"{obj}: {exc.message}")
    if done:
        messages.success(request, f"{what}: {done}.")


class ModelScoped(admin.ModelAdmin):  # type: ignore[type-arg]
    """Staff who are not superusers see only rows of models they may view, and lineage rows
    as far as they lead to such versions, decided by core.permissions like everywhere
    else (deleted rows stay hidden from them)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return permissions.admin_rows(request.user, super().get_queryset(request))


class ReadOnlyAdmin(ModelScoped):
    """Records whose changes go through services: browse and search here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "sequence",
        "occurred_at",
        "actor_label",
        "channel",
        "action",
        "registered_model_name",
        "target_label",
    ]
    list_filter = ["action", "channel"]
    search_fields = ["actor_label", "action", "registered_model_name", "target_label", "request_id"]
    date_hierarchy = "occurred_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return audit.events_visible(request.user)


# --- API tokens -----------------------------------------------------------------------------


class TokenForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ApiToken
        fields = ["user", "name", "expires_at"]

    def clean(self) -> dict[str, Any]:
        """The service's own rules, as form errors instead of an exception in save_model."""
        data = super().clean() or {}
        try:
            token_fields(data.get("name") or "", data.get("expires_at"))
        except ValidationFailed as exc:
            field = next(iter(exc.fields), None)
            self.add_error(field if field in self.fields else None, exc.message)
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "prefix"]
    list_filter = ["revoked_at", "expires_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = TokenForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user" and not permissions.is_superuser(request.user):
            kwargs["queryset"] = User.objects.filter(
                pk=request.user.pk or 0
            )  # as token_create says
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ["user", "name", "expires_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # tokens are created and revoked, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays for the audit trail

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        token, secret = token_create(
            actor=_actor(request),
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = token.pk
        request._modelgate_new_token = (token, secret)  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        token, secret = request._modelgate_new_token  # type: ignore[attr-defined]
        return TemplateResponse(
            request,
            "admin/core/token_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "API token created",
                "token": token,
                "secret": secret,
            },
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # token_revoke decides (its owner or a superuser); a refusal is a message, not a 500
        run_service(request, queryset.select_related("user"), token_revoke, "Revoked", "token")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """Superusers see every token; other staff their own (token_revoke's rule)."""
        tokens = super().get_queryset(request)
        if permissions.is_superuser(request.user):
            return tokens
        return tokens.filter(user_id=getattr(request.user, "pk", None))
