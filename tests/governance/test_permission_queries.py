"""Permission-filtered lists cost a constant number of queries, however many models, versions
and grants (to the user and to their groups) there are."""

from __future__ import annotations

import pytest

from core import permissions
from core.permissions import Perm
from tests.factories import GroupFactory, make_model, make_version, superuser

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("models", [2, 24])
def test_lists_with_per_model_grants_cost_constant_queries(
    api, data_scientist, outsider, models, django_assert_max_num_queries
):
    team = GroupFactory(name="team-x")
    outsider.groups.add(team)
    for i in range(models):
        registered_model = make_model(data_scientist, f"m{i}")
        make_version(data_scientist, registered_model)
        make_version(data_scientist, registered_model)
        if i % 3 == 0:
            permissions.grant(Perm.VIEW, registered_model, user=outsider)
        elif i % 3 == 1:
            permissions.grant(Perm.VIEW, registered_model, group=team)
        # every third model stays hidden
    client = api(outsider)
    visible = len([i for i in range(models) if i % 3 != 2])
    for url, expected in (
        ("/api/v1/models/", visible),
        ("/api/v1/versions/", 2 * visible),
        ("/api/v1/audit/events/", None),
    ):
        with django_assert_max_num_queries(9):
            body = client.get(url, {"page_size": 200}).json()
        if expected is not None:
            assert len(body["results"]) == expected, url
        names = {row.get("name") or row.get("model") for row in body["results"]}
        assert not any(n and int(n[1:]) % 3 == 2 for n in names), url


def test_holders_answers_in_one_query(
    data_scientist, reviewer, outsider, django_assert_num_queries
):
    registered_model = make_model(data_scientist, "m")
    team = GroupFactory(name="approvers")
    outsider.groups.add(team)
    # A grant nobody with authority made confers no approval...
    permissions.grant(
        Perm.APPROVE_PROMOTION, registered_model, group=team, granted_by=data_scientist
    )
    assert "olivia" not in [
        u.username for u in permissions.holders(Perm.APPROVE_PROMOTION, registered_model)
    ]
    # ...the same grant made by an administrator does.
    permissions.grant(Perm.APPROVE_PROMOTION, registered_model, group=team, granted_by=superuser())
    with django_assert_num_queries(1):
        names = [u.username for u in permissions.holders(Perm.APPROVE_PROMOTION, registered_model)]
    assert "carol" in names and "olivia" in names and "alice" not in names


def test_nothing_is_ever_granted_to_anonymous_users(data_scientist):
    from django.contrib.auth.models import AnonymousUser, User

    registered_model = make_model(data_scientist, "m")
    with pytest.raises(ValueError):
        permissions.grant(Perm.VIEW, registered_model, user=AnonymousUser())
    assert not User.objects.filter(username="AnonymousUser").exists()  # guardian's is not made
    assert not permissions.has(AnonymousUser(), Perm.VIEW, registered_model)
    assert not permissions.visible_models(AnonymousUser()).exists()


def test_auditors_read_the_whole_log_and_admins_role_too(api, roles, data_scientist):
    from tests.factories import UserFactory

    make_model(data_scientist, "m")
    auditor = UserFactory(username="audrey")
    auditor.groups.add(roles["auditor"])
    actions = {
        r["action"]
        for r in api(auditor).get("/api/v1/audit/events/", {"page_size": 500}).json()["results"]
    }
    assert "role.synced" in actions  # an event tied to no model
    assert (
        api(auditor).patch("/api/v1/models/m/", {"description": "x"}, format="json").status_code
        == 403
    )
