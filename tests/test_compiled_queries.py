"""Hot reads compiled once per process (core.compiled, issue 16 item 2): the model by name,
the version by number, a model's newest version per stage and the token by digest answer
exactly as a fresh queryset would, for every kind of user and after grants change; a query
whose values do not travel as plain parameters refuses to compile."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from guardian.shortcuts import remove_perm

from core import permissions
from core.actors import Actor
from core.compiled import CompiledQuery
from core.errors import NotFound
from core.permissions import Perm
from core.tokens import token_authenticate, token_create, token_revoke
from registry import selectors
from registry.models import ModelVersion, RegisteredModel
from registry.services.common import version_locked
from tests.factories import make_model, make_version, place, superuser

pytestmark = pytest.mark.django_db


@pytest.fixture
def models(admin_user: User) -> dict[str, RegisteredModel]:
    made = {}
    for name in ("granted", "hidden"):
        made[name] = make_model(admin_user, name=name)
        for _ in range(3):
            make_version(admin_user, made[name])
    return made


def _visible_names(user: Any) -> set[str]:
    found = set()
    for name in ("granted", "hidden"):
        try:
            selectors.registered_model_get(user=user, name=name)
        except NotFound:
            continue
        found.add(name)
    return found


def _grantee(models: dict[str, RegisteredModel]) -> User:
    user = User.objects.create_user("grantee", password="pw-123456789")
    permissions.grant(Perm.VIEW, models["granted"], user=user)
    return user


def test_each_kind_of_user_sees_what_the_gate_allows(
    models: dict[str, RegisteredModel], admin_user: User, viewer: User
) -> None:
    grantee = _grantee(models)
    inactive = User.objects.create_user("gone", is_active=False)
    permissions.grant(Perm.VIEW, models["granted"], user=inactive)
    # Every call below after the first runs the SQL compiled for its reach.
    for _ in range(2):
        assert _visible_names(admin_user) == {"granted", "hidden"}
        assert _visible_names(viewer) == {"granted", "hidden"}  # a role-wide view
        assert _visible_names(grantee) == {"granted"}
        assert _visible_names(inactive) == set()
        assert _visible_names(None) == set()


def test_the_compiled_sql_binds_each_users_own_id(models: dict[str, RegisteredModel]) -> None:
    first = _grantee(models)
    second = User.objects.create_user("second", password="pw-123456789")
    permissions.grant(Perm.VIEW, models["hidden"], user=second)
    assert _visible_names(first) == {"granted"}
    assert _visible_names(second) == {"hidden"}  # same shape, the other user's grants


def test_a_grant_through_a_group_and_a_revoked_grant_count_at_once(
    models: dict[str, RegisteredModel],
) -> None:
    grantee = _grantee(models)
    assert _visible_names(grantee) == {"granted"}
    team = Group.objects.create(name="team")
    grantee.groups.add(team)
    permissions.grant(Perm.VIEW, models["hidden"], group=team)
    assert _visible_names(grantee) == {"granted", "hidden"}
    remove_perm(str(Perm.VIEW), grantee, models["granted"])
    grantee.groups.remove(team)
    assert _visible_names(grantee) == set()


def test_a_user_who_gains_a_role_gets_the_roles_reach(
    models: dict[str, RegisteredModel], roles: dict[str, Group]
) -> None:
    grantee = _grantee(models)
    assert _visible_names(grantee) == {"granted"}
    grantee.groups.add(roles["viewer"])
    grantee = User.objects.get(pk=grantee.pk)  # a new request's user
    assert _visible_names(grantee) == {"granted", "hidden"}


def test_versions_and_the_newest_per_stage_follow_the_gate(
    models: dict[str, RegisteredModel], admin_user: User
) -> None:
    grantee = _grantee(models)
    hidden = models["hidden"]
    assert selectors.version_get(user=admin_user, registered_model=hidden, number=2).version == 2
    with pytest.raises(NotFound):
        selectors.version_get(user=grantee, registered_model=hidden, number=2)
    granted = models["granted"]
    assert selectors.version_get(user=grantee, registered_model=granted, number=3).version == 3
    with pytest.raises(NotFound):
        selectors.version_get(user=grantee, registered_model=granted, number=4)

    place(ModelVersion.objects.get(registered_model=granted, version=1), "staging")
    latest = selectors.latest_per_stage(user=grantee, model_pks=[granted.pk])
    assert [(v.stage, v.version) for v in latest] == [("none", 3), ("staging", 1)]
    # The same answer as the uncompiled path (several models) gives for this model.
    both = selectors.latest_per_stage(user=grantee, model_pks=[granted.pk, hidden.pk])
    assert [(v.stage, v.version) for v in both] == [("none", 3), ("staging", 1)]
    assert selectors.latest_per_stage(user=grantee, model_pks=[hidden.pk]) == []


def test_a_deleted_model_is_gone_for_the_compiled_read(
    models: dict[str, RegisteredModel], admin_user: User
) -> None:
    assert "hidden" in _visible_names(admin_user)
    RegisteredModel.objects.filter(pk=models["hidden"].pk).update(deleted_at="2026-01-01T00:00Z")
    assert _visible_names(admin_user) == {"granted"}


def test_tokens_by_digest_each_find_their_own_user_and_revocation_holds(
    models: dict[str, RegisteredModel],
) -> None:
    grantee = _grantee(models)
    root = superuser()
    token, raw = token_create(actor=Actor(user=grantee, channel="api"), user=grantee, name="a")
    _, raw_root = token_create(actor=Actor(user=root, channel="api"), user=root, name="b")
    assert token_authenticate(raw) == grantee
    assert token_authenticate(raw_root) == root
    assert token_authenticate(raw + "x") is None
    token_revoke(actor=Actor(user=grantee, channel="api"), token=token)
    assert token_authenticate(raw) is None


# --- Refusing to compile what cannot be reused --------------------------------------------


def test_a_value_that_never_reaches_the_sql_refuses_to_compile() -> None:
    query: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, name: RegisteredModel.objects.order_by("pk")[:1]
    )
    with pytest.raises(ImproperlyConfigured, match="did not reach the SQL"):
        query.rows(name="x")


def test_a_value_transformed_into_a_pattern_refuses_to_compile() -> None:
    query: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, name: RegisteredModel.objects.filter(name__icontains=name)
    )
    with pytest.raises(ImproperlyConfigured, match="transformed"):
        query.rows(name="credit")


def test_a_value_written_into_the_sql_text_refuses_to_compile() -> None:
    # The limit is written into the SQL, so two compiles with different placeholders differ.
    query: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, n: RegisteredModel.objects.filter(pk=n).order_by("pk")[: n % 7 + 1]
    )
    with pytest.raises(ImproperlyConfigured, match="depends on the values"):
        query.rows(n=1)


def test_only_strings_and_integers_bind() -> None:
    query: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, flag: RegisteredModel.objects.filter(pk=flag)
    )
    with pytest.raises(TypeError):
        query.rows(flag=True)


@pytest.mark.parametrize("number", [2**31, 2**63, 10**40, -(2**31) - 1])
def test_a_number_beyond_the_columns_range_finds_nothing(
    models: dict[str, RegisteredModel], admin_user: User, number: int
) -> None:
    with pytest.raises(NotFound):
        selectors.version_get(user=admin_user, registered_model=models["granted"], number=number)


def _search(client: Any, text: str, **params: str) -> list[tuple[str, str]]:
    response = client.get("/api/2.0/mlflow/model-versions/search", {"filter": text, **params})
    assert response.status_code == 200, response.content
    return [(v["name"], v["version"]) for v in response.json()["model_versions"]]


def test_the_clients_search_by_name_answers_as_the_general_search(
    models: dict[str, RegisteredModel], admin_user: User, api: Any
) -> None:
    """`name='<name>'` on the first page runs compiled SQL; the same filter with a condition
    that changes nothing runs the general query, and both must agree (order included)."""
    grantee = _grantee(models)
    make_version(admin_user, models["granted"])
    ModelVersion.objects.filter(registered_model=models["granted"], version=2).update(
        deleted_at="2026-01-01T00:00Z"
    )
    for user in (admin_user, grantee):
        client = api(user)
        for name in ("granted", "hidden", "missing", "gran%"):
            fast = _search(client, f"name='{name}'")
            general = _search(client, f"name='{name}' AND version_number > 0")
            assert fast == general
    assert _search(api(grantee), "name='granted'") == [
        ("granted", "4"),
        ("granted", "3"),
        ("granted", "1"),
    ]
    assert _search(api(grantee), "name='hidden'") == []
    # A smaller page and later pages go the general way and page as before.
    first = api(admin_user).get(
        "/api/2.0/mlflow/model-versions/search", {"filter": "name='granted'", "max_results": "2"}
    )
    assert [v["version"] for v in first.json()["model_versions"]] == ["4", "3"]
    rest = _search(
        api(admin_user),
        "name='granted'",
        max_results="2",
        page_token=first.json()["next_page_token"],
    )
    assert rest == [("granted", "1")]


# --- A model the gate let the user see is not checked twice in one request --------------


def test_having_seen_one_model_opens_no_other(
    models: dict[str, RegisteredModel], admin_user: User
) -> None:
    grantee = _grantee(models)
    granted, hidden = models["granted"], models["hidden"]
    selectors.registered_model_get(user=grantee, name="granted")  # seen by this user object
    assert selectors.version_get(user=grantee, registered_model=granted, number=1).version == 1
    with pytest.raises(NotFound):
        selectors.version_get(user=grantee, registered_model=hidden, number=1)
    assert selectors.latest_per_stage(user=grantee, model_pks=[hidden.pk]) == []
    listed = selectors.version_list(
        user=grantee, filters=selectors.VersionFilters(registered_model=hidden)
    )
    assert list(listed) == []
    listed = selectors.version_list(
        user=grantee, filters=selectors.VersionFilters(registered_model=granted)
    )
    assert sorted(v.version for v in listed) == [1, 2, 3]


def test_what_was_seen_is_forgotten_with_the_grants(models: dict[str, RegisteredModel]) -> None:
    grantee = _grantee(models)
    granted = models["granted"]
    selectors.registered_model_get(user=grantee, name="granted")
    remove_perm(str(Perm.VIEW), grantee, granted)
    permissions.invalidate(grantee)  # as a change of grants within a request does
    with pytest.raises(NotFound):
        selectors.version_get(user=grantee, registered_model=granted, number=1)
    # A new request's user object has seen nothing.
    fresh = User.objects.get(pk=grantee.pk)
    with pytest.raises(NotFound):
        selectors.version_get(user=fresh, registered_model=granted, number=1)


def test_a_value_hidden_inside_another_parameter_refuses_to_compile() -> None:
    # The JSON document carries the value (wrapped, or escaped as text): not a parameter of
    # its own, so it would keep the first placeholder forever.
    query: CompiledQuery[ModelVersion] = CompiledQuery(
        lambda shape, source: ModelVersion.objects.filter(source=source, params={"k": source})
    )
    with pytest.raises(ImproperlyConfigured, match="depends on the values"):
        query.rows(source="s3://x")


def test_a_build_that_reads_the_clock_refuses_to_compile() -> None:
    from django.utils import timezone

    query: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, name: RegisteredModel.objects.filter(name=name, created_at__lt=timezone.now())
    )
    with pytest.raises(ImproperlyConfigured, match="depends on the values"):
        query.rows(name="x")


def test_each_call_binds_the_type_it_was_compiled_with(
    models: dict[str, RegisteredModel], admin_user: User
) -> None:
    query: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, name: RegisteredModel.objects.filter(name=name).order_by("pk")[:1]
    )
    assert query.first(name="granted") == models["granted"]
    with pytest.raises(TypeError):
        query.first(name=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        selectors.version_get(user=admin_user, registered_model=models["granted"], number=True)


@pytest.mark.django_db(transaction=True)
def test_a_compiled_row_lock_outside_a_transaction_is_refused_as_django_refuses_it(
    models: dict[str, RegisteredModel],
) -> None:
    """A lock taken in autocommit would hold nothing: where the database locks rows, the
    compiled read refuses it as a fresh queryset does, compiled or not; inside a transaction
    it locks and answers."""
    version = models["granted"].versions.first()
    assert version is not None
    if connection.features.has_select_for_update:
        for _ in range(2):  # the first call compiles, the second runs what was compiled
            with pytest.raises(TransactionManagementError):
                version_locked(version)
    with transaction.atomic():
        locked = version_locked(version)
        assert (locked.pk, locked.registered_model.name) == (version.pk, "granted")
    with transaction.atomic(), pytest.raises(ModelVersion.DoesNotExist):
        version_locked(ModelVersion(pk=version.pk + 10_000))


def test_a_query_routed_to_another_database_refuses_to_compile() -> None:
    """Compiled SQL runs on the default database; a build that names another one (or a router
    that sends it there) is refused rather than run on the wrong database."""
    elsewhere: CompiledQuery[RegisteredModel] = CompiledQuery(
        lambda shape, name: RegisteredModel.objects.using("replica").filter(name=name)
    )
    with pytest.raises(ImproperlyConfigured, match="replica"):
        elsewhere.rows(name="x")
