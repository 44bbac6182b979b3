"""The one place that decides access to registered models and everything under them.

A user may act on a registered model if they are an active superuser, if a role group grants
the permission globally, or if a per-model grant (to the user or one of their groups) does.
Versions, artifacts, aliases, deployments, cards and jobs inherit their model's grants.

Invisible means 404 (missing and forbidden look the same); visible but not allowed means 403.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from enum import Enum, StrEnum
from typing import Any, Generic, Protocol, TypeGuard, TypeVar

from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Exists, JSONField, Model, OuterRef, Q, QuerySet, Subquery, Value
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from core.aggregates import JSONArrayAgg
from core.compiled import CompiledQuery
from core.errors import Forbidden, NotFound
from core.models import GrantMeta

M = TypeVar("M", bound=Model)
AnyUser = User | AnonymousUser | None


class ScopeRow(Protocol):
    """What the gate reads of a registered model (the registered scope's rows)."""

    @property
    def pk(self) -> Any: ...

    @property
    def name(self) -> str: ...

    @property
    def is_deleted(self) -> bool: ...


class Perm(StrEnum):
    VIEW = "view_registeredmodel"
    CHANGE = "change_registeredmodel"
    DELETE = "delete_registeredmodel"
    REQUEST_PROMOTION = "request_promotion"
    APPROVE_PROMOTION = "approve_promotion"
    MANAGE_ACCESS = "manage_access"


# How pages name each permission (the access page, the audit log); codenames stay in the API.
LABELS: dict[str, str] = {
    Perm.VIEW: "view",
    Perm.CHANGE: "change",
    Perm.DELETE: "delete",
    Perm.REQUEST_PROMOTION: "request promotion",
    Perm.APPROVE_PROMOTION: "approve promotion",
    Perm.MANAGE_ACCESS: "manage access",
    "add_registeredmodel": "create models",
}


def label(codename: str) -> str:
    """A permission as pages name it; an unknown codename as it is."""
    return LABELS.get(codename, codename)


_VERBS = {
    Perm.VIEW: "view",
    Perm.CHANGE: "change",
    Perm.DELETE: "delete",
    Perm.REQUEST_PROMOTION: "request promotions of",
    Perm.APPROVE_PROMOTION: "approve promotions of",
    Perm.MANAGE_ACCESS: "manage access to",
}

# The gate imports no app: each app tells it, from its AppConfig.ready(), which model is the
# unit of permissions (the registered model), how each of its model-scoped models reaches it
# (and its version, for soft deletion), and how its lineage records reach versions. A model
# nobody registered is refused (KeyError), never let through.
_SCOPE: list[type[Model]] = []
_PATHS: dict[type[Model], tuple[str, str | None]] = {}
_LINEAGE_PATHS: dict[type[Model], str] = {}
_VERSION: list[type[Model]] = []


def register_scope(model: type[Model], *, version: type[Model]) -> None:
    """The model whose rows carry grants (with `deleted_at`, `is_deleted` and `name`), and its
    versions (reached from it by `registered_model`). Registered once."""
    if _SCOPE and _SCOPE[0] is not model:
        raise ImproperlyConfigured(f"The permission scope is already {_SCOPE[0].__name__}.")
    _SCOPE[:] = [model]
    _VERSION[:] = [version]
    _TABLES.clear()
    _PATHS[model] = ("", None)


def register_scoped(model: type[Model], to_model: str, to_version: str | None = None) -> None:
    """Rows of `model` belong to one registered model, reached by the lookup path `to_model`,
    and (if `to_version` is not None) to one version reached by `to_version` ("" when the row
    is the version)."""
    _PATHS[model] = (to_model, to_version)


def register_lineage(model: type[Model], to_versions: str) -> None:
    """Rows of `model` are lineage records, visible through the versions reached by the lookup
    path `to_versions`."""
    _LINEAGE_PATHS[model] = to_versions


def _registered(paths: dict[type[Model], Any], model: type[Model]) -> Any:
    try:
        return paths[model]
    except KeyError:
        raise ImproperlyConfigured(
            f"{model.__name__} is not registered with the permission gate: refused."
        ) from None


def _scope() -> type[Model]:
    if not _SCOPE:
        raise ImproperlyConfigured("No app registered the permission scope (register_scope).")
    return _SCOPE[0]


# The grant tables, found once: every permission check reads them.
_TABLES: list[tuple[Any, Any]] = []


def _grant_tables() -> tuple[Any, Any]:
    """The scope's per-model grant tables: guardian's direct foreign-key tables, which must
    record who granted (GrantMeta). Anything else (guardian's generic tables) is refused."""
    if _TABLES:
        return _TABLES[0]
    scope = _scope()
    # guardian accepts the class (it reads the model's fields); its stubs say instance
    tables = (get_user_obj_perms_model(scope), get_group_obj_perms_model(scope))  # type: ignore[arg-type]
    for table in tables:
        if not issubclass(table, GrantMeta):
            raise ImproperlyConfigured(
                f"{table.__name__} is not a direct grant table of {scope.__name__} "
                "extending core.models.GrantMeta."
            )
    _TABLES[:] = [tables]
    return tables


def is_model_scoped(model: type[Model]) -> bool:
    """Whether rows of `model` belong to one registered model (and inherit its grants)."""
    return model in _PATHS


def _active(user: AnyUser) -> TypeGuard[User]:
    return bool(user is not None and user.is_authenticated and user.is_active)


def _global_permissions(user: Any) -> QuerySet[Permission]:
    return Permission.objects.filter(
        Q(user=user) | Q(group__user=user), content_type__app_label=_scope()._meta.app_label
    )


def _global_codenames(user: User) -> set[str]:
    """Registry permissions granted to the user directly or through groups (roles): one
    query, remembered on the user object for the rest of the request."""
    cached = user.__dict__.get("_modelgate_global")
    if cached is None:
        cached = set(_global_permissions(user).values_list("codename", flat=True).distinct())
        user.__dict__["_modelgate_global"] = cached
    return cached


def global_codenames_column(user_ref: OuterRef) -> Subquery:
    """A subquery column with the JSON array of a user's global registry codenames, so code
    that loads a user anyway (token authentication) gets them in the same query. Hand the
    value to `remember_global`."""
    return Subquery(
        _global_permissions(user_ref)
        .order_by()
        .annotate(_one=Value(1))
        .values("_one")
        .annotate(_json=JSONArrayAgg("codename"))
        .values("_json"),
        output_field=JSONField(),
    )


def remember_global(user: User, codenames: list[str] | None) -> None:
    user.__dict__["_modelgate_global"] = set(codenames or [])


def has_global(user: AnyUser, codename: str) -> bool:
    """A role-wide grant (from the user's groups or the user), not tied to one model."""
    if not _active(user):
        return False
    return user.is_superuser or codename in _global_codenames(user)


def is_superuser(user: AnyUser) -> bool:
    """An active superuser: beyond every grant, and the only one who sees deleted rows in the
    admin and acts on other users' tokens."""
    return _active(user) and user.is_superuser


def is_administrator(user: AnyUser) -> bool:
    """Administrators: active superusers and holders of the admin role (manage_access on
    every model). Only they grant approval or access management, change risk tiers and
    policies, trust files, restore and purge."""
    return has_global(user, Perm.MANAGE_ACCESS)


# Per-model grants of these confer nothing unless an administrator made them (a model's
# creator manages its access, but cannot appoint its approvers).
ADMIN_GRANTED = (Perm.APPROVE_PROMOTION,)
_NOT_BY_ADMIN = Q(permission__codename__in=[str(p) for p in ADMIN_GRANTED], by_administrator=False)


def _grant_rows(
    user: User | int, codename: str | None = None
) -> tuple[QuerySet[Any], QuerySet[Any]]:
    user_table, group_table = _grant_tables()
    user_rows = user_table.objects.filter(user=user)
    group_rows = group_table.objects.filter(group__user=user)
    if codename is None or codename in ADMIN_GRANTED:
        # Only rows of these codenames can be made by a non-administrator and confer nothing;
        # asked for another codename, there is nothing to exclude (a simpler plan, and the
        # same answer).
        user_rows = user_rows.exclude(_NOT_BY_ADMIN)
        group_rows = group_rows.exclude(_NOT_BY_ADMIN)
    if codename is not None:
        user_rows = user_rows.filter(permission__codename=codename)
        group_rows = group_rows.filter(permission__codename=codename)
    return user_rows, group_rows


def models_with(user: AnyUser, perm: Perm) -> QuerySet[Model]:
    """Registered models (not deleted) on which the user holds `perm`: one SQL query, however
    many grants."""
    qs = _scope()._default_manager.filter(deleted_at__isnull=True)
    if not _active(user):
        return qs.none()
    if has_global(user, perm):
        return qs
    user_rows, group_rows = _grant_rows(user, perm)
    return qs.filter(
        Q(pk__in=user_rows.values("content_object_id"))
        | Q(pk__in=group_rows.values("content_object_id"))
    )


def visible_models(user: AnyUser) -> QuerySet[Model]:
    return models_with(user, Perm.VIEW)


def may_read_whole_audit_log(user: AnyUser) -> bool:
    """Administrators and auditors (holders of core.view_auditevent) read every event;
    everyone else reads the events of the models they may view."""
    return _active(user) and (user.is_superuser or user.has_perm("core.view_auditevent"))


class Reach(Enum):
    """Which models a user may view, as the SQL of `visible` needs to know it."""

    NONE = "none"  # anonymous or inactive
    ALL = "all"  # a role-wide view grant (or superuser)
    GRANTED = "granted"  # the models granted to the user or the user's groups


def reach(user: AnyUser) -> Reach:
    """The one decision `visible` branches on; code that keeps compiled SQL per branch
    (core.compiled) keys it with this."""
    if not _active(user):
        return Reach.NONE
    return Reach.ALL if has_global(user, Perm.VIEW) else Reach.GRANTED


def visible(user: AnyUser, queryset: QuerySet[M]) -> QuerySet[M]:
    """Restrict a queryset of registry objects to what the user may view (soft-deleted hidden)."""
    return visible_to(reach(user), user.pk if _active(user) else None, queryset)


def visible_to(
    user_reach: Reach, user_id: Any, queryset: QuerySet[M], *, narrow: bool = False
) -> QuerySet[M]:
    """`visible` for a user known by `reach` and id (a compiled query binds the id later).
    `narrow`: the query finds a few rows (one model, one version), so each row's grant is
    looked up by index instead of gathering all the user's grants first."""
    model_path, version_path = _registered(_PATHS, queryset.model)
    to_model = f"{model_path}__" if model_path else ""
    qs = queryset.filter(**{f"{to_model}deleted_at__isnull": True})
    if user_reach is Reach.NONE:
        return qs.none()
    if user_reach is Reach.GRANTED:
        user_rows, group_rows = _grant_rows(user_id, Perm.VIEW)
        if narrow:
            row = OuterRef(f"{to_model}pk")
            qs = qs.filter(
                Q(Exists(user_rows.filter(content_object_id=row)))
                | Q(Exists(group_rows.filter(content_object_id=row)))
            )
        else:
            # The grant subqueries apply to the model key directly (no second pass over the
            # model table), so PostgreSQL can walk an ordered index and stop at the page's end.
            key = f"{to_model}pk__in"
            qs = qs.filter(
                Q(**{key: user_rows.values("content_object_id")})
                | Q(**{key: group_rows.values("content_object_id")})
            )
    if version_path is not None:
        to_version = f"{version_path}__" if version_path else ""
        qs = qs.filter(**{f"{to_version}deleted_at__isnull": True})
    return qs


# The registered models the gate let this user object view during this request (the user
# object lives for one request; `invalidate` forgets them with the other caches).
_SEEN = "_modelgate_seen"


def _seen(user: AnyUser, registered_model_pk: Any) -> bool:
    return user is not None and registered_model_pk in user.__dict__.get(_SEEN, ())


def visible_within(user: AnyUser, queryset: QuerySet[M], registered_model_pk: Any) -> QuerySet[M]:
    """`visible`, for rows of one registered model: when the gate already let this user view
    that model in this request, its grant filter is not run a second time."""
    user_reach = reach(user)
    if user_reach is Reach.GRANTED and _seen(user, registered_model_pk):
        return visible_to(Reach.ALL, None, queryset)
    return visible_to(user_reach, user.pk if _active(user) else None, queryset)


class VisibleQuery(Generic[M]):
    """A hot read compiled once per reach (core.compiled): `build(shape, gate, **values)`
    returns the queryset, ordered and sliced, with `gate(queryset)` applied where `visible`
    would be (in its `narrow` form: these reads find a few rows); `rows(user, shape,
    **values)` runs it for the user.

    `shows_models`: the rows are registered models, and the ones found are remembered as
    seen by this user. `within`: the value naming the one registered model the query keeps
    to; for a model this user has seen, the grant filter is not repeated (as
    `visible_within`)."""

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        *,
        shows_models: bool = False,
        within: str | None = None,
    ) -> None:
        self._build = build
        self._shows_models = shows_models
        self._within = within
        self._compiled: CompiledQuery[M] = CompiledQuery(self._gated)

    def _gated(self, shape: tuple[Reach, Hashable], user_id: Any = None, **values: Any) -> Any:
        user_reach, inner = shape
        return self._build(
            inner, lambda qs: visible_to(user_reach, user_id, qs, narrow=True), **values
        )

    def rows(self, user: AnyUser, shape: Hashable = (), **values: str | int) -> list[M]:
        user_reach = reach(user)
        if user_reach is Reach.NONE:
            return []
        if user_reach is Reach.GRANTED:
            if user is None or user.pk is None:
                return []
            if self._within is not None and _seen(user, values[self._within]):
                return self._compiled.rows((Reach.ALL, shape), **values)
            values["user_id"] = user.pk
        found = self._compiled.rows((user_reach, shape), **values)
        if self._shows_models and user_reach is Reach.GRANTED and user is not None:
            user.__dict__.setdefault(_SEEN, set()).update(row.pk for row in found)
        return found

    def first(self, user: AnyUser, shape: Hashable = (), **values: str | int) -> M | None:
        found = self.rows(user, shape, **values)
        return found[0] if found else None


def admin_rows(user: AnyUser, queryset: QuerySet[M]) -> QuerySet[M]:
    """The rows the admin lists: everything (deleted rows included, to restore or purge) for
    active superusers; for other staff, model-scoped rows of the models they may view and
    lineage rows as far as they lead to such versions; other tables unfiltered (their admin
    decides who may open them)."""
    if is_superuser(user):
        return queryset
    if is_lineage(queryset.model):
        return visible_lineage(user, queryset)
    if not is_model_scoped(queryset.model):
        return queryset
    return visible(user, queryset)


def is_lineage(model: type[Model]) -> bool:
    """Whether rows of `model` are lineage records (visible through the versions they feed)."""
    return model in _LINEAGE_PATHS


def visible_lineage(user: AnyUser, queryset: QuerySet[M]) -> QuerySet[M]:
    """Restrict lineage records to those leading to a version the user may view. A global
    (role) view grant is the whole catalogue, orphan records included; per-model grants show
    only what leads to their models' live versions. One subquery, no extra rows or joins in
    the caller's query (so no duplicates and no DISTINCT)."""
    if not _active(user):
        return queryset.none()
    if has_global(user, Perm.VIEW):
        return queryset
    path = _registered(_LINEAGE_PATHS, queryset.model)
    reachable = queryset.model._default_manager.filter(
        **{f"{path}__in": visible(user, _VERSION[0]._default_manager.all()).values("pk")}
    )
    return queryset.filter(pk__in=reachable.values("pk"))


def _object_codenames(user: User, registered_model: ScopeRow) -> set[str]:
    cache: dict[int, set[str]] = user.__dict__.setdefault("_modelgate_grants", {})
    if registered_model.pk not in cache:
        user_rows, group_rows = _grant_rows(user)
        user_rows = user_rows.filter(content_object_id=registered_model.pk)
        group_rows = group_rows.filter(content_object_id=registered_model.pk)
        cache[registered_model.pk] = set(
            user_rows.values_list("permission__codename", flat=True).union(
                group_rows.values_list("permission__codename", flat=True)
            )
        )
    return cache[registered_model.pk]


def has(user: AnyUser, perm: Perm, registered_model: ScopeRow) -> TypeGuard[User]:
    """Whether the user may `perm` on the model (only ever an active user may)."""
    if not _active(user) or registered_model.is_deleted:
        return False
    if has_global(user, perm):
        return True
    return perm in _object_codenames(user, registered_model)


def is_model_administrator(user: AnyUser, registered_model: ScopeRow) -> bool:
    """An administrator, or someone an administrator made manager of this one model: whose
    approval satisfies a policy's "administrator approval required". A creator's own
    manage_access grant does not count."""
    if not _active(user) or registered_model.is_deleted:
        return False
    if is_administrator(user):
        return True
    user_rows, group_rows = _grant_rows(user, Perm.MANAGE_ACCESS)
    return (
        user_rows.filter(content_object_id=registered_model.pk, by_administrator=True).exists()
        or group_rows.filter(content_object_id=registered_model.pk, by_administrator=True).exists()
    )


def require(user: AnyUser, perm: Perm, registered_model: ScopeRow) -> None:
    """Raise NotFound if the model is invisible to the user, Forbidden if not allowed."""
    if not has(user, Perm.VIEW, registered_model):
        raise NotFound(
            f"Registered model '{registered_model.name}' not found.",
            code="registered_model_not_found",
        ).refusing(registered_model.pk, registered_model.name, str(perm))
    if perm != Perm.VIEW and not has(user, perm, registered_model):
        raise Forbidden(
            f"You may not {_VERBS[perm]} registered model '{registered_model.name}'.",
            code="permission_denied",
        ).refusing(registered_model.pk, registered_model.name, str(perm))


def require_global(user: AnyUser, codename: str, what: str) -> None:
    """For actions not tied to one model (create a model, record lineage)."""
    if not has_global(user, codename):
        raise Forbidden(f"You may not {what}.", code="permission_denied")


def invalidate(user: User) -> None:
    """Forget cached grants on this user object (after grants change within a request)."""
    user.__dict__.pop("_modelgate_grants", None)
    user.__dict__.pop("_modelgate_global", None)
    user.__dict__.pop(_SEEN, None)
    for attr in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)


def _permission(perm: Perm) -> Permission:
    return Permission.objects.get(
        content_type=ContentType.objects.get_for_model(_scope()), codename=str(perm)
    )


def grant(
    perm: Perm,
    registered_model: ScopeRow,
    *,
    user: User | None = None,
    group: Group | None = None,
    granted_by: User | None = None,
) -> bool:
    """Add a per-model grant, remembering who made it and whether they were an
    administrator; True if it was new (or newly made by an administrator). Callers check who
    may grant what and audit the change."""
    if (user is None) == (group is None):
        raise ValueError("Grant to exactly one of user or group.")
    if user is not None and not user.is_authenticated:
        raise ValueError("Anonymous users are never granted anything.")
    permission = _permission(perm)
    by_administrator = is_administrator(granted_by)
    table = _grant_tables()[0 if user is not None else 1]
    row, created = table.objects.get_or_create(
        permission=permission,
        content_object=registered_model,
        **({"user": user} if user is not None else {"group": group}),  # type: ignore[dict-item]
        defaults={"granted_by": granted_by, "by_administrator": by_administrator},
    )
    if not created and by_administrator and not row.by_administrator:
        row.granted_by, row.by_administrator = granted_by, True
        row.save(update_fields=["granted_by", "by_administrator"])
        created = True
    if user is not None:
        invalidate(user)
    return bool(created)


def holders(
    perm: Perm, registered_model: ScopeRow, *, granted_by_administrator: bool = False
) -> QuerySet[User]:
    """Active users who may `perm` on the model: superusers, role (global) holders and per-model
    grantees, directly or through a group. One query. `granted_by_administrator`: count only
    per-model grants an administrator made (for MANAGE_ACCESS, the model's administrators as
    `is_model_administrator` defines them)."""
    global_perm = Q(content_type__app_label=_scope()._meta.app_label, codename=str(perm))
    direct = Permission.objects.filter(global_perm, user=OuterRef("pk"))
    via_group = Permission.objects.filter(global_perm, group__user=OuterRef("pk"))
    user_rows = (
        _grant_tables()[0]
        .objects.filter(content_object=registered_model, permission__codename=str(perm))
        .exclude(_NOT_BY_ADMIN)
    )
    group_rows = (
        _grant_tables()[1]
        .objects.filter(content_object=registered_model, permission__codename=str(perm))
        .exclude(_NOT_BY_ADMIN)
    )
    if granted_by_administrator:
        user_rows = user_rows.filter(by_administrator=True)
        group_rows = group_rows.filter(by_administrator=True)
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Exists(direct)
            | Exists(via_group)
            | Q(pk__in=user_rows.values("user_id"))
            | Q(pk__in=group_rows.values("group__user"))
        )
        .order_by("username")
    )


def deciders(perm: Perm, registered_model: ScopeRow) -> QuerySet[User]:
    """`holders` of `perm` who can also see the model (a grant of approval without view, or
    view revoked later, decides nothing: the request's page answers 404 to them). One query."""
    return holders(perm, registered_model).filter(
        pk__in=holders(Perm.VIEW, registered_model).values("pk")
    )


def grant_table(registered_model: ScopeRow) -> dict[str, Any]:
    """Who holds what on the model, for its access page: per-model grants to users and groups
    (revocable there) and the roles whose members hold permissions everywhere. Three queries."""
    grants: dict[tuple[str, str], list[str]] = {}
    for username, codename in (
        _grant_tables()[0]
        .objects.filter(content_object=registered_model)
        .values_list("user__username", "permission__codename")
    ):
        grants.setdefault(("user", username), []).append(codename)
    for name, codename in (
        _grant_tables()[1]
        .objects.filter(content_object=registered_model)
        .values_list("group__name", "permission__codename")
    ):
        grants.setdefault(("group", name), []).append(codename)
    roles: dict[str, list[str]] = {}
    for name, codename in Permission.objects.filter(
        content_type__app_label=_scope()._meta.app_label,
        codename__in=[str(p) for p in Perm],
        group__isnull=False,
    ).values_list("group__name", "codename"):
        roles.setdefault(name, []).append(codename)
    order = [str(p) for p in Perm]
    return {
        "grants": [
            {
                "kind": kind,
                "name": name,
                "who": name if kind == "user" else f"group:{name}",
                "perms": sorted(codes, key=order.index),
            }
            for (kind, name), codes in sorted(grants.items())
        ],
        "roles": [
            {"name": name, "perms": sorted(codes, key=order.index)}
            for name, codes in sorted(roles.items())
        ],
    }
