"""Access management and governance records in the admin.

Every change with governance meaning goes through a service, so it is checked and audited the
same way as through the API: per-model grants, API tokens (the secret is shown once, on the
page that answers the creation, and never stored), policies, webhooks (the secret is
write-only) and delivery replays, and users and groups (governance.accounts: their flags,
roles, permissions and names). Audit events, promotion requests and history are read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core import permissions
from core.actors import Actor
from core.admin import ReadOnlyAdmin, run_service
from core.errors import DomainError, Forbidden, NotFound
from core.permissions import Perm
from core.refusals import refused
from governance import access, accounts, policies, readiness, sso, webhooks
from governance import models as m
from governance.roles import ROLES
from registry.services.common import require_admin

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, channel="admin")


def _refused(request: HttpRequest, exc: DomainError) -> None:
    """A service said no: audit it if it is a refusal (as the API and pages do), and say why."""
    refused(request, exc)
    messages.error(request, exc.message)


# --- Per-model grants -----------------------------------------------------------------------


def _model_permissions() -> QuerySet[Permission]:
    return Permission.objects.filter(
        content_type__app_label="registry",
        content_type__model="registeredmodel",
        codename__in=[str(p) for p in Perm],
    )


class _GrantAdmin(admin.ModelAdmin):
    """Add and delete only (a grant is a fact, not a record to edit); both through
    governance.access, which checks 'manage access' on the model and audits the change."""

    list_filter = ["permission", "by_administrator"]
    autocomplete_fields = ["content_object"]
    # Who granted, and whether an administrator did, is the service's to record.
    readonly_fields = ["granted_by", "by_administrator"]
    grantee = "user"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = (
            super()
            .get_queryset(request)
            .select_related("content_object", "permission", self.grantee)
        )
        if permissions.is_superuser(request.user):
            return qs
        return qs.filter(
            content_object__in=permissions.models_with(request.user, Perm.MANAGE_ACCESS)
        )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "permission":
            kwargs["queryset"] = _model_permissions()
        if db_field.name == "content_object" and not permissions.is_superuser(request.user):
            kwargs["queryset"] = permissions.models_with(request.user, Perm.MANAGE_ACCESS)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _grant(self, request: HttpRequest, obj: Any, add: bool) -> bool:
        service = access.grant_add if add else access.grant_remove
        try:
            return service(
                actor=_actor(request),
                registered_model=obj.content_object,
                perm=Perm(obj.permission.codename),
                **{self.grantee: getattr(obj, self.grantee)},
            )
        except DomainError as exc:
            _refused(request, exc)
            return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self._grant(request, obj, add=True)
        found = (
            type(obj)
            .objects.filter(
                content_object=obj.content_object,
                permission=obj.permission,
                **{self.grantee: getattr(obj, self.grantee)},
            )
            .first()
        )
        obj.pk = found.pk if found else None

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if obj.pk is None:  # refused: the message says why; nothing was saved
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._grant(request, obj, add=False)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self._grant(request, obj, add=False)


@admin.register(m.RegisteredModelUserPermission)
class UserGrantAdmin(_GrantAdmin):
    list_display = ["content_object", "user", "permission", "granted_by", "by_administrator"]
    search_fields = ["content_object__name", "user__username"]
    autocomplete_fields = ["content_object", "user"]
    grantee = "user"


@admin.register(m.RegisteredModelGroupPermission)
class GroupGrantAdmin(_GrantAdmin):
    list_display = ["content_object", "group", "permission", "granted_by", "by_administrator"]
    search_fields = ["content_object__name", "group__name"]
    autocomplete_fields = ["content_object", "group"]
    grantee = "group"


# --- Administered records: administrators only, each change through its service ------------


def _administers(request: HttpRequest) -> bool:
    """The services' own rule (registry.services.common.require_admin), asked before drawing
    a form or an action the services would refuse."""
    try:
        require_admin(_actor(request), "change this")
    except Forbidden:
        return False
    return True


def _form_error(form: forms.BaseForm, exc: DomainError) -> forms.ValidationError:
    """A service's ValidationFailed as a form error on its field (or the form's)."""
    field = next(iter(exc.fields), None)
    if field in form.fields:
        return forms.ValidationError({field: exc.message})
    return forms.ValidationError(exc.message)


class _ThroughServices(admin.ModelAdmin):
    """Each object saved through `_save` and deleted through `_delete`, which call the audited
    services. Bulk deletion deletes one object at a time, one event each. A refusal or an
    error the form did not catch becomes a message and saves nothing; never a 500."""

    def _save(self, actor: Actor, obj: Any, form: Any, change: bool) -> Any:
        raise NotImplementedError

    def _delete(self, actor: Actor, obj: Any) -> None:
        raise NotImplementedError

    def _refuse(self, request: HttpRequest, exc: DomainError) -> None:
        _refused(request, exc)
        request._modelgate_refused = True  # type: ignore[attr-defined]

    @staticmethod
    def _was_refused(request: HttpRequest) -> bool:
        return getattr(request, "_modelgate_refused", False)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            obj.pk = self._save(_actor(request), obj, form, change).pk
        except DomainError as exc:
            self._refuse(request, exc)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if self._was_refused(request) else super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if self._was_refused(request) else super().log_change(request, obj, message)

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if self._was_refused(request):  # the message says why; nothing was saved
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if self._was_refused(request):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        try:
            self._delete(_actor(request), obj)
        except DomainError as exc:
            self._refuse(request, exc)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            try:
                self._delete(_actor(request), obj)
            except DomainError as exc:
                messages.error(request, f"{obj}: {exc.message}")

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if self._was_refused(request):
            return HttpResponseRedirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            )
        return super().response_delete(request, obj_display, obj_id)


class _AdministeredAdmin(_ThroughServices):
    """Add, change and delete for administrators only (the admin asks the same rule as the
    service)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _administers(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _administers(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _administers(request)


# --- Users and groups: Django's pages, each change through governance.accounts -------------

admin.site.unregister(User)
admin.site.unregister(Group)


class _AccountsAdmin(_ThroughServices):
    """Django's permissions to see the pages, and the services' rule (administrators) to
    change anything on them. The services save the many-to-many fields (roles, permissions)
    themselves, so the form's are not saved again."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and _administers(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _administers(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _administers(request)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if self._was_refused(request):
            return
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(User)
class AuditedUserAdmin(_AccountsAdmin, UserAdmin):
    def _save(self, actor: Actor, obj: User, form: Any, change: bool) -> User:
        data = form.cleaned_data
        if not change:
            usable = data.get("set_usable_password", True)
            return accounts.user_create(
                actor=actor,
                username=data["username"],
                password=data.get("password1") if usable else None,
            )
        editable = (*accounts.USER_FIELDS, *accounts.USER_RELATIONS)
        return accounts.user_update(
            actor=actor, user=obj, **{k: v for k, v in data.items() if k in editable}
        )

    def _delete(self, actor: Actor, obj: User) -> None:
        accounts.user_delete(actor=actor, user=obj)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        """Django's password page, under the services' rule for whose account may change (a
        staff or superuser account only by a superuser)."""
        target = self.get_object(request, unquote(id))
        if target is not None:
            refusal = accounts.account_change_refusal(_actor(request), target)
            if refusal is not None:
                refused(request, refusal)
                raise PermissionDenied(refusal.message)
        return super().user_change_password(request, id, form_url)


class _GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name", "permissions"]

    def clean_name(self) -> str:
        # Only shown for groups that are no role (a role's name is read-only).
        try:
            return accounts.group_name_validate(self.cleaned_data["name"])
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Group)
class AuditedGroupAdmin(_AccountsAdmin, GroupAdmin):
    """A role's name is read-only (governance.accounts says why)."""

    form = _GroupForm

    def get_readonly_fields(self, request: HttpRequest, obj: Group | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "name") if obj is not None and obj.name in ROLES else fields

    def _save(self, actor: Actor, obj: Group, form: Any, change: bool) -> Group:
        data = form.cleaned_data
        if not change:
            return accounts.group_create(
                actor=actor, name=data["name"], permissions=data["permissions"]
            )
        return accounts.group_update(
            actor=actor, group=obj, name=data.get("name"), permissions=data["permissions"]
        )

    def _delete(self, actor: Actor, obj: Group) -> None:
        accounts.group_delete(actor=actor, group=obj)


class NamesField(forms.CharField):
    """A list of names typed as "a, b, c" (stored as a JSON list)."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [part.strip() for part in text.split(",") if part.strip()]


def _choices(names: Any, labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    return [(n, (labels or {}).get(n, n)) for n in names]


class PolicyForm(forms.ModelForm):
    """Every list a field people fill in: checks and card sections ticked from what exists,
    aliases typed as comma-separated names. The services validate the values again."""

    required_checks = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Readiness checks that must pass before a request can be approved.",
    )
    card_required_sections = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Model card sections that must be written before a card is submitted.",
    )
    protected_aliases = NamesField(
        required=False,
        help_text="Aliases that move only through a promotion request, comma-separated.",
    )
    production_aliases = NamesField(
        required=False,
        help_text="Aliases that follow a version into production, comma-separated "
        "(for example champion).",
    )

    class Meta:
        model = m.Policy
        fields = ["risk_tier", "registered_model", *policies.EDITABLE]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        checks = [(name, title) for name, (title, _) in readiness.CHECKS.items()]
        sections = _choices(policies.card_section_keys())
        # A stored name this release does not know (a check since removed, a row edited in the
        # database) is shown ticked and marked, never dropped unseen: saving refuses it until
        # an administrator unticks it, so a required check cannot vanish in a save.
        for field, known in (("required_checks", checks), ("card_required_sections", sections)):
            offered = {name for name, _ in known}
            names = readiness.stored_names(getattr(self.instance, field, None) or [])
            strays = [v for v in dict.fromkeys(names) if v not in offered]
            self.fields[field].choices = [  # type: ignore[attr-defined]
                *known,
                *((v, f"{v} (unknown here: untick to save)") for v in strays),
            ]
            if strays and not self.is_bound:
                self.initial[field] = [n for n in names if n in offered] + strays

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        try:
            policies.validate({k: v for k, v in data.items() if k in policies.EDITABLE})
        except DomainError as exc:
            raise _form_error(self, exc) from None
        # The scope is chosen when the policy is added (read-only afterwards).
        if "risk_tier" in self.fields and (
            bool(data.get("risk_tier")) == bool(data.get("registered_model"))
        ):
            raise forms.ValidationError("A policy is for one risk tier or one model.")
        return data


@admin.register(m.Policy)
class PolicyAdmin(_AdministeredAdmin):
    form = PolicyForm
    list_display = [
        "__str__",
        "production_approvals",
        "staging_approvals",
        "admin_approval_required",
        "auto_apply",
        "updated_at",
    ]
    list_filter = ["risk_tier", "admin_approval_required", "auto_apply"]
    list_select_related = ["registered_model"]
    search_fields = ["risk_tier", "registered_model__name"]
    autocomplete_fields = ["registered_model"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["risk_tier", "registered_model"] if obj is not None else []

    def _save(self, actor: Actor, obj: m.Policy, form: Any, change: bool) -> m.Policy:
        if change:  # the stored row: the form has already written its values into `obj`
            policy = m.Policy.objects.select_related("registered_model").filter(pk=obj.pk).first()
            if policy is None:
                raise NotFound(f"The {obj} no longer exists.", code="policy_not_found")
        else:
            policy = m.Policy(
                risk_tier=obj.risk_tier or None, registered_model=obj.registered_model
            )
        return policies.policy_save(
            actor=actor, policy=policy, **{f: form.cleaned_data[f] for f in policies.EDITABLE}
        )

    def _delete(self, actor: Actor, obj: m.Policy) -> None:
        policies.policy_delete(actor=actor, policy=obj)


# --- Promotion records, history, webhooks ---------------------------------------------------


class ReviewInline(admin.TabularInline):
    model = m.Review
    extra = 0
    can_delete = False
    readonly_fields = ["reviewer", "decision", "comment", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(m.PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "registered_model",
        "version",
        "target_stage",
        "target_alias",
        "status",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status", "target_stage", "kind"]
    list_select_related = ["registered_model", "version__registered_model", "requested_by"]
    search_fields = ["registered_model__name", "requested_by__username", "justification"]
    inlines = [ReviewInline]


@admin.register(m.StageHistory)
class StageHistoryAdmin(ReadOnlyAdmin):
    list_display = [
        "registered_model",
        "version",
        "kind",
        "name",
        "started_at",
        "started_by",
        "ended_at",
        "promotion_request",
        "origin",
    ]
    list_filter = ["kind", "name", "origin"]
    list_select_related = [
        "registered_model",
        "version__registered_model",
        "started_by",
        "promotion_request",
    ]
    search_fields = ["registered_model__name", "name"]


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=1000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=_choices(webhooks.EVENTS),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to receive every event.",
    )
    # Write-only: never rendered, not even back into the form after an error.
    secret = forms.CharField(
        max_length=200, strip=False, required=False, widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = m.Webhook
        fields = ["name", "url", "secret", "registered_model", "events", "active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        secret = self.fields["secret"]
        if self.instance.pk is None:
            secret.required = True
            secret.help_text = (
                "Shared with the receiver to check the signature. It is not "
                "shown again after saving."
            )
        else:
            secret.help_text = (
                "A secret is set and is never shown. Leave this empty to keep "
                "it, or type a new one to replace it."
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "events" in data and data["events"] is None:
            data["events"] = []
        values = {k: data[k] for k in webhooks.EDITABLE if k in data}
        if not values.get("secret"):
            values.pop("secret", None)  # empty on a change: keep the stored one
        if self.instance.pk is not None and values.get("url") == self.instance.url:
            values.pop("url")  # unchanged: not looked up again (each delivery checks it)
        try:
            webhooks.webhook_validate(values)
        except DomainError as exc:
            raise _form_error(self, exc) from None
        return data


@admin.register(m.Webhook)
class WebhookAdmin(_AdministeredAdmin):
    form = WebhookForm
    list_display = ["name", "url", "registered_model", "active", "created_at"]
    list_filter = ["active"]
    list_select_related = ["registered_model"]
    search_fields = ["name", "url", "registered_model__name"]
    autocomplete_fields = ["registered_model"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        # A read-only page would print the secret.
        hide_secret = obj is not None and not self.has_change_permission(request, obj)
        return [
            f
            for f in ("name", "url", "secret", "registered_model", "events", "active")
            if not (hide_secret and f == "secret")
        ]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, ...]:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # The delivery log goes with its webhook (webhooks.webhook_delete); deliveries are
        # read-only on their own, which must not make a webhook with deliveries undeletable.
        perms_needed = set(perms_needed) - {str(m.WebhookDelivery._meta.verbose_name)}
        return deleted, counts, perms_needed, protected

    def _save(self, actor: Actor, obj: m.Webhook, form: Any, change: bool) -> m.Webhook:
        values = {k: form.cleaned_data[k] for k in webhooks.EDITABLE}
        if not change:
            return webhooks.webhook_create(actor=actor, **values)
        if not values["secret"]:
            del values["secret"]
        return webhooks.webhook_change(actor=actor, webhook=obj, **values)

    def _delete(self, actor: Actor, obj: m.Webhook) -> None:
        webhooks.webhook_delete(actor=actor, webhook=obj)


RESPONSE_SHOWN = 200  # characters of a delivery's response the admin shows


@admin.register(m.WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "webhook",
        "event",
        "status",
        "attempts",
        "response_status",
        "delivered_at",
    ]
    list_filter = ["status", "event", "webhook"]
    list_select_related = ["webhook"]
    search_fields = ["webhook__name", "event", "delivery_id"]
    actions = ["replay"]
    # The response body is shown only as its start: enough to read a receiver's complaint,
    # not a window onto whatever server an address pointed at.
    # A tuple: Django takes a list or a tuple, and only a tuple types as both attributes.
    fields = readonly_fields = (
        "webhook",
        "event",
        "delivery_id",
        "status",
        "attempts",
        "response_status",
        "response_start",
        "error_start",
        "created_at",
        "last_attempt_at",
        "delivered_at",
        "replay_of",
        "payload",
    )

    @admin.display(description="Response (start)")
    def response_start(self, obj: m.WebhookDelivery) -> str:
        text = obj.response_body[:RESPONSE_SHOWN]
        return text + "…" if len(obj.response_body) > RESPONSE_SHOWN else text

    @admin.display(description="Error")
    def error_start(self, obj: m.WebhookDelivery) -> str:
        # Kept short since attempt() bounds it; rows written before that are cut here.
        return webhooks.brief_error(obj.error)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return _administers(request)

    @admin.action(description="Replay selected deliveries", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_service(
            request,
            queryset.select_related("webhook__registered_model"),
            webhooks.webhook_delivery_replay,
            "Queued again",
            param="delivery",
        )


# --- Single sign-on: IdP group → role mappings (administrators, through governance.sso) -----


class IdpGroupMappingForm(forms.ModelForm):
    class Meta:
        model = m.IdpGroupMapping
        fields = ["idp_group", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The form fields Django made for the model's CharField and ForeignKey.
        cast(forms.CharField, self.fields["idp_group"]).strip = False  # the service refuses spaces
        cast(forms.ModelChoiceField, self.fields["role"]).queryset = Group.objects.filter(
            name__in=ROLES
        ).order_by("name")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        try:
            sso.idp_mapping_validate(data.get("idp_group"), data.get("role"))
        except DomainError as exc:
            raise _form_error(self, exc) from None
        return data


@admin.register(m.IdpGroupMapping)
class IdpGroupMappingAdmin(_AdministeredAdmin):
    form = IdpGroupMappingForm
    list_display = ["idp_group", "role", "created_by", "created_at", "updated_at"]
    list_filter = ["role"]
    list_select_related = ["role", "created_by"]
    search_fields = ["idp_group", "role__name"]

    def _save(
        self, actor: Actor, obj: m.IdpGroupMapping, form: Any, change: bool
    ) -> m.IdpGroupMapping:
        values = {"idp_group": form.cleaned_data["idp_group"], "role": form.cleaned_data["role"]}
        if change:
            return sso.idp_mapping_change(actor=actor, mapping=obj, **values)
        return sso.idp_mapping_create(actor=actor, **values)

    def _delete(self, actor: Actor, obj: m.IdpGroupMapping) -> None:
        sso.idp_mapping_delete(actor=actor, mapping=obj)


@admin.register(m.ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdmin):
    """Links are made by single sign-on (governance.sso, audited); administrators see them."""

    list_display = ["user", "issuer", "subject", "created_at", "last_login_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "subject", "issuer"]
    list_filter = ["issuer"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _administers(request)


@admin.register(m.MaturitySnapshot)
class MaturitySnapshotAdmin(ReadOnlyAdmin):
    """Written by the daily task (governance.maturity.snapshots); they count every model, so
    only those who may view the whole organisation see them."""

    list_display = ["taken_on", "team", "taken_at"]
    list_filter = ["taken_on"]
    list_select_related = ["team"]
    search_fields = ["team__name"]
    date_hierarchy = "taken_on"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and permissions.has_global(
            request.user, Perm.VIEW
        )
