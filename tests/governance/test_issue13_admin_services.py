"""Issue 13: users and groups change through governance.accounts, whichever edge asks. Called
directly (as `manage.py shell` would) each change happens and is audited with its actor and
channel; a non-administrator is refused and nothing changes; and each admin form writes the
same event as the service."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from core.actors import Actor
from core.errors import Conflict, DomainError, Forbidden, ValidationFailed
from core.models import AuditEvent
from governance import accounts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
U = "/admin/auth/user/"
G = "/admin/auth/group/"


@pytest.fixture
def root(admin_user: User) -> Actor:
    return Actor(user=admin_user, channel="cli")


@pytest.fixture
def browser(client, admin_user):
    client.force_login(admin_user)
    return client


def _perm(codename: str) -> Permission:
    return Permission.objects.get(codename=codename)


def _events(*actions: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__in=actions).order_by("sequence"))


def _shape(event: AuditEvent) -> tuple:
    """What must be the same whichever edge made the change."""
    return event.action, event.target_type, event.actor_label, event.details


def _user_form(user: User, **overrides) -> dict:
    return {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "groups": list(user.groups.values_list("pk", flat=True)),
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
        **overrides,
    }


def _user_state(user: User) -> tuple:
    user.refresh_from_db()
    return (
        user.username,
        user.is_active,
        user.is_staff,
        user.is_superuser,
        sorted(user.groups.values_list("name", flat=True)),
        sorted(user.user_permissions.values_list("codename", flat=True)),
    )


# --- The services, called directly -------------------------------------------------------------


def test_a_user_change_from_the_shell_is_audited_with_its_actor_and_channel(root, roles, viewer):
    accounts.user_update(
        actor=root,
        user=viewer,
        is_staff=True,
        first_name="Victor",
        groups=[roles["reviewer"]],
        user_permissions=[_perm("view_auditevent")],
    )

    assert _user_state(viewer) == (
        "victor",
        True,
        True,
        False,
        ["reviewer"],
        ["view_auditevent"],
    )
    assert viewer.first_name == "Victor"
    flags, access = _events("user.access_changed")
    for event in (flags, access):
        assert (event.actor_label, event.channel) == ("root", "cli")
        assert event.target_type == "auth.user" and event.target_id == str(viewer.pk)
    assert flags.details == {"user": "victor", "changes": {"is_staff": {"from": False, "to": True}}}
    assert access.details == {
        "user": "victor",
        "roles": {"added": ["reviewer"], "removed": ["viewer"]},
        "permissions": {"added": ["view_auditevent"], "removed": []},
    }


def test_a_change_that_changes_nothing_writes_no_event(root, roles, viewer):
    accounts.user_update(actor=root, user=viewer, is_active=True, groups=[roles["viewer"]])
    accounts.group_update(
        actor=root, group=roles["viewer"], permissions=list(roles["viewer"].permissions.all())
    )
    assert not _events("user.access_changed", "group.permissions_changed", "group.renamed")


def test_creating_and_deleting_a_user_from_the_shell_is_audited(root, roles):
    user = accounts.user_create(actor=root, username="dana", email="dana@example.com")
    assert not user.has_usable_password()
    [created] = _events("user.created")
    assert created.details == {"user": "dana"} and created.channel == "cli"
    assert created.target_id == str(user.pk) and created.actor_label == "root"

    with pytest.raises(Conflict) as taken:
        accounts.user_create(actor=root, username="dana")
    assert taken.value.code == "username_taken" and len(_events("user.created")) == 1

    accounts.user_delete(actor=root, user=user)
    assert not User.objects.filter(username="dana").exists()
    [deleted] = _events("user.deleted")
    assert deleted.details == {"user": "dana"} and deleted.target_id == str(created.target_id)


def test_group_changes_from_the_shell_are_audited(root, roles):
    group = accounts.group_create(
        actor=root, name="project-x", permissions=[_perm("view_registeredmodel")]
    )
    accounts.group_update(
        actor=root,
        group=group,
        name="project-y",
        permissions=[_perm("view_registeredmodel"), _perm("approve_promotion")],
    )
    accounts.group_delete(actor=root, group=group)

    events = _events("group.created", "group.renamed", "group.permissions_changed", "group.deleted")
    assert [(e.action, e.details) for e in events] == [
        ("group.created", {"group": "project-x"}),
        (
            "group.permissions_changed",
            {"group": "project-x", "added": ["view_registeredmodel"], "removed": []},
        ),
        ("group.renamed", {"group": "project-y", "from": "project-x", "to": "project-y"}),
        (
            "group.permissions_changed",
            {"group": "project-y", "added": ["approve_promotion"], "removed": []},
        ),
        ("group.deleted", {"group": "project-y"}),
    ]
    assert {(e.actor_label, e.channel) for e in events} == {("root", "cli")}
    assert not Group.objects.filter(name__startswith="project-").exists()


def test_a_role_keeps_its_name_and_no_group_takes_one(root, roles):
    with pytest.raises(ValidationFailed) as renamed:
        accounts.group_update(actor=root, group=roles["viewer"], name="everyone")
    assert renamed.value.fields == {"name": [renamed.value.message]}
    other = accounts.group_create(actor=root, name="project-x")
    for attempt in (
        lambda: accounts.group_update(actor=root, group=other, name="auditor"),
        lambda: accounts.group_create(actor=root, name="admin"),
    ):
        with pytest.raises(ValidationFailed, match="role's name"):
            attempt()
    assert sorted(Group.objects.values_list("name", flat=True)) == sorted([*roles, "project-x"])
    assert not _events("group.renamed")


def _staff_with_auth_permissions(roles) -> User:
    """Staff with every Django permission on users and groups, in every role but admin: still
    no administrator."""
    user = UserFactory(username="steward", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth"))
    user.groups.add(*[group for name, group in roles.items() if name != "admin"])
    return user


def test_a_non_administrator_is_refused_and_nothing_changes(roles, viewer):
    steward = _staff_with_auth_permissions(roles)
    actor = Actor(user=steward, channel="cli")
    group = Group.objects.create(name="project-x")
    before = (_user_state(viewer), _user_state(steward), list(AuditEvent.objects.all()))
    attempts = [
        lambda: accounts.user_update(actor=actor, user=steward, is_superuser=True),
        lambda: accounts.user_update(actor=actor, user=steward, groups=[roles["admin"]]),
        lambda: accounts.user_update(actor=actor, user=viewer, is_active=False),
        lambda: accounts.user_create(actor=actor, username="mallory"),
        lambda: accounts.user_delete(actor=actor, user=viewer),
        lambda: accounts.group_create(actor=actor, name="mine"),
        lambda: accounts.group_update(
            actor=actor, group=roles["viewer"], permissions=Permission.objects.all()
        ),
        lambda: accounts.group_update(actor=actor, group=group, name="renamed"),
        lambda: accounts.group_delete(actor=actor, group=group),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden) as refused:
            attempt()
        assert refused.value.status_code == 403 and isinstance(refused.value, DomainError)
    assert (_user_state(viewer), _user_state(steward), list(AuditEvent.objects.all())) == before
    assert sorted(Group.objects.values_list("name", flat=True)) == sorted([*roles, "project-x"])
    assert not User.objects.filter(username="mallory").exists()


def test_an_administrator_who_is_no_superuser_hands_out_roles_but_not_superuser(roles, viewer):
    boss = UserFactory(username="boss")
    boss.groups.add(roles["admin"])
    actor = Actor(user=boss, channel="cli")
    accounts.user_update(actor=actor, user=viewer, groups=[roles["viewer"], roles["reviewer"]])
    assert _user_state(viewer)[4] == ["reviewer", "viewer"]
    for flag in ("is_superuser", "is_staff"):
        with pytest.raises(Forbidden) as refused:
            accounts.user_update(actor=actor, user=boss, **{flag: True})
        assert refused.value.code == "superuser_required"
    assert _user_state(boss)[2:4] == (False, False)
    assert [e.actor_label for e in _events("user.access_changed")] == ["boss"]


def test_unknown_fields_are_refused(root, viewer):
    with pytest.raises(ValidationFailed, match="password"):
        accounts.user_update(actor=root, user=viewer, password="plain")
    with pytest.raises(ValidationFailed, match="Not a field"):
        accounts.user_create(actor=root, username="x", is_wizard=True)
    assert not User.objects.filter(username="x").exists() and not _events("user.")


# --- The admin's forms write what the services write ----------------------------------------


def test_the_user_change_form_writes_the_services_events(browser, root, roles):
    one, two = UserFactory(username="one"), UserFactory(username="two")
    for user in (one, two):
        user.groups.add(roles["viewer"])
    r = browser.post(
        f"{U}{one.pk}/change/",
        _user_form(one, is_staff="on", groups=[roles["reviewer"].pk]),
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    by_admin = _events("user.access_changed")
    accounts.user_update(
        actor=root,
        user=two,
        is_staff=True,
        groups=[roles["reviewer"]],
        user_permissions=[],
    )
    by_service = _events("user.access_changed")[len(by_admin) :]

    def renamed(events):
        return [_shape(e)[:3] + (str(e.details).replace("'two'", "'one'"),) for e in events]

    assert len(by_admin) == 2 and renamed(by_service) == [
        _shape(e)[:3] + (str(e.details),) for e in by_admin
    ]
    assert {e.channel for e in by_admin} == {"admin"}
    assert _user_state(one)[1:] == _user_state(two)[1:]


def test_the_user_add_form_writes_the_services_event(browser, root, roles):
    r = browser.post(
        f"{U}add/",
        {
            "username": "erin",
            "usable_password": "true",
            "password1": "x7!kQ-long-pass",
            "password2": "x7!kQ-long-pass",
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    assert User.objects.get(username="erin").check_password("x7!kQ-long-pass")
    accounts.user_create(actor=root, username="frank", password="x7!kQ-long-pass")
    by_admin, by_service = _events("user.created")
    assert by_admin.channel == "admin" and by_service.channel == "cli"
    assert _shape(by_admin)[:3] == _shape(by_service)[:3]
    assert (by_admin.details, by_service.details) == ({"user": "erin"}, {"user": "frank"})


def test_deleting_users_in_the_admin_writes_the_services_event(browser, root, roles):
    one, two, three = (UserFactory(username=n) for n in ("one", "two", "three"))
    assert browser.post(f"{U}{one.pk}/delete/", {"post": "yes"}).status_code == 302
    r = browser.post(U, {"action": "delete_selected", "post": "yes", "_selected_action": [two.pk]})
    assert r.status_code == 302
    accounts.user_delete(actor=root, user=three)
    events = _events("user.deleted")
    assert [(e.details, e.channel) for e in events] == [
        ({"user": "one"}, "admin"),
        ({"user": "two"}, "admin"),
        ({"user": "three"}, "cli"),
    ]
    assert not User.objects.filter(username__in=["one", "two", "three"]).exists()


def test_the_group_forms_write_the_services_events(browser, root, roles):
    view = _perm("view_registeredmodel")
    approve = _perm("approve_promotion")

    def run_admin():
        assert browser.post(f"{G}add/", {"name": "a", "permissions": [view.pk]}).status_code == 302
        group = Group.objects.get(name="a")
        r = browser.post(
            f"{G}{group.pk}/change/", {"name": "a2", "permissions": [view.pk, approve.pk]}
        )
        assert r.status_code == 302
        assert browser.post(f"{G}{group.pk}/delete/", {"post": "yes"}).status_code == 302

    def run_service():
        group = accounts.group_create(actor=root, name="a", permissions=[view])
        accounts.group_update(actor=root, group=group, name="a2", permissions=[view, approve])
        accounts.group_delete(actor=root, group=group)

    actions = ("group.created", "group.renamed", "group.permissions_changed", "group.deleted")
    run_admin()
    by_admin = _events(*actions)
    run_service()
    by_service = _events(*actions)[len(by_admin) :]
    assert len(by_admin) == 5
    assert [_shape(e) for e in by_admin] == [_shape(e) for e in by_service]
    assert {e.channel for e in by_admin} == {"admin"} and {e.channel for e in by_service} == {"cli"}


def test_staff_who_are_not_administrators_change_no_user_or_group_in_the_admin(
    client, roles, viewer
):
    steward = _staff_with_auth_permissions(roles)
    client.force_login(steward)
    group = Group.objects.create(name="project-x")
    before = (_user_state(viewer), _user_state(steward), list(AuditEvent.objects.all()))
    assert client.get(f"{U}{viewer.pk}/change/").status_code == 200  # view only
    assert (
        client.post(f"{U}{steward.pk}/change/", _user_form(steward, is_superuser="on")).status_code
        == 403
    )
    assert client.post(f"{U}add/", {"username": "mallory"}).status_code == 403
    assert client.post(f"{U}{viewer.pk}/delete/", {"post": "yes"}).status_code == 403
    assert (
        client.post(
            f"{G}{group.pk}/change/",
            {
                "name": "renamed",
                "permissions": list(Permission.objects.values_list("pk", flat=True)),
            },
        ).status_code
        == 403
    )
    assert client.post(f"{G}{group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert (_user_state(viewer), _user_state(steward), list(AuditEvent.objects.all())) == before
    assert Group.objects.get(pk=group.pk).name == "project-x"


# --- A staff or superuser account is a superuser's to change (attack review, issue 13) -------


def test_an_administrator_who_is_no_superuser_cannot_take_over_a_superuser(roles, admin_user):
    """Deactivating a superuser, or changing its e-mail and then its password, would hand an
    administrator the superuser's powers."""
    boss = UserFactory(username="boss", is_staff=True)
    boss.groups.add(roles["admin"])
    boss.user_permissions.add(_perm("change_user"), _perm("view_user"))
    actor = Actor(user=boss, channel="cli")
    before = _user_state(admin_user)
    for change in ({"is_active": False}, {"email": "attacker@example.com"}, {"groups": []}):
        with pytest.raises(Forbidden) as refused:
            accounts.user_update(actor=actor, user=admin_user, **change)
        assert refused.value.code == "superuser_required"
    assert _user_state(admin_user) == before

    # nor through the admin's password page (Django's own view, which skips the services)
    password = admin_user.password
    client = Client()
    client.force_login(boss)
    page = f"{U}{admin_user.pk}/password/"
    assert client.get(page).status_code == 403
    r = client.post(page, {"password1": "Another-pass-9876", "password2": "Another-pass-9876"})
    assert r.status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.password == password

    # a superuser still may
    root = Client()
    root.force_login(admin_user)
    other = UserFactory(username="staffer", is_staff=True)
    r = root.post(
        f"{U}{other.pk}/password/",
        {"password1": "Another-pass-9876", "password2": "Another-pass-9876"},
    )
    assert r.status_code == 302
    other.refresh_from_db()
    assert other.check_password("Another-pass-9876")
