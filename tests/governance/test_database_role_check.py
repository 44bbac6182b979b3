"""`manage.py check` warns when the application's database user could switch the audit table's
append-only triggers off: a superuser, the table's owner. A least-privilege role passes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ALIAS = "least_privilege"


def _check(**options: object) -> str:
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err, **options)
    return out.getvalue() + err.getvalue()


def _sql(statement: str, params: list[object] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def role() -> Iterator[str]:
    """A login role of our own, without privileges, as the application would use; dropped
    again whatever the test did to it."""
    if not _sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0]:
        pytest.skip(
            "needs a PostgreSQL superuser as the test user: it creates and "
            "drops login roles of its own (CI runs as postgres)"
        )
    name = f"modelgate_check_{secrets.token_hex(6)}"
    password = secrets.token_hex(16)
    owner = _sql(
        "SELECT pg_get_userbyid(relowner) FROM pg_class "
        "WHERE oid = 'governance_auditevent'::regclass"
    )[0][0]
    _sql(f"CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'")  # hex
    try:
        default = connections["default"]
        connections[ALIAS] = default.__class__(
            {**default.settings_dict, "USER": name, "PASSWORD": password}, alias=ALIAS
        )
        try:
            yield name
        finally:
            connections[ALIAS].close()
            del connections[ALIAS]
    finally:
        _sql(f'ALTER TABLE governance_auditevent OWNER TO "{owner}"')
        _sql(f"REASSIGN OWNED BY {name} TO CURRENT_USER")
        _sql(f"DROP OWNED BY {name}")
        _sql(f"DROP ROLE {name}")


def test_check_warns_about_the_test_servers_own_user():
    superuser, owner = _sql(
        "SELECT rolsuper, pg_has_role(current_user, "
        "(SELECT relowner FROM pg_class WHERE oid = "
        "'governance_auditevent'::regclass), 'MEMBER') "
        "FROM pg_roles WHERE rolname = current_user"
    )[0]
    output = _check()
    assert superuser or owner  # it created the test database and ran its migrations
    if superuser:  # CI runs as postgres
        assert "governance.W001" in output and "is a PostgreSQL superuser" in output
        assert "governance.W002" not in output  # one warning says it
    else:
        assert "governance.W002" in output
    assert "A least-privilege database role" in output  # the hint points to the README


def test_check_can_be_silenced(settings):
    settings.SILENCED_SYSTEM_CHECKS = [
        *settings.SILENCED_SYSTEM_CHECKS,
        "governance.W001",
        "governance.W002",
    ]
    assert "governance.W00" not in _check()


def test_a_least_privilege_role_passes_and_an_owner_or_bypassrls_role_does_not(role):
    assert connections[ALIAS].settings_dict["USER"] == role
    assert "governance.W00" not in _check(databases=[ALIAS])

    _sql(f"ALTER TABLE governance_auditevent OWNER TO {role}")
    output = _check(databases=[ALIAS])
    assert "governance.W002" in output and f"'{role}'" in output
    assert "owns the audit table" in output
    assert "governance.W001" not in output

    _sql(f"ALTER ROLE {role} BYPASSRLS")
    assert "governance.W003" in _check(databases=[ALIAS])
