"""System checks of the governance app (`manage.py check`).

The audit table is append-only through triggers (migration 0003), which hold only against a
role that cannot switch them off: a superuser can, and so can the table's owner (or any member
of the owner's role). These checks ask PostgreSQL what the application's database user may do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core import checks
from django.db import DatabaseError, connections

from core.models import AuditEvent

HINT = (
    "Run the application as a least-privilege role and keep the owner for `migrate` (README, "
    "'A least-privilege database role'). To accept this on a test server, add the id to the "
    "SILENCED_SYSTEM_CHECKS environment variable."
)

_ROLE_SQL = """
SELECT r.rolsuper, r.rolbypassrls,
       COALESCE((SELECT pg_has_role(current_user, c.relowner, 'MEMBER') FROM pg_class c
                 WHERE c.oid = to_regclass(%s)), false)
FROM pg_roles r WHERE r.rolname = current_user
"""


@checks.register(checks.Tags.security, checks.Tags.database)
def database_role_check(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn when the database user can rewrite the audit log. Unlike Django's own database
    checks this one also runs for a plain `manage.py check` (on the default database): the
    question is who the application connects as, and that is where it is asked."""
    found: list[checks.CheckMessage] = []
    for alias in databases if databases is not None else ["default"]:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute(_ROLE_SQL, [AuditEvent._meta.db_table])
                row = cursor.fetchone()
        except DatabaseError:
            continue  # an unreachable database is reported by whatever needs it first
        if row is None:
            continue
        superuser, bypass_rls, owner = row
        user = connection.settings_dict.get("USER") or "the current user"
        if superuser:
            found.append(
                checks.Warning(
                    f"The database user {user!r} of {alias!r} is a PostgreSQL superuser: it can "
                    "switch off the triggers that keep the audit log append-only.",
                    hint=HINT,
                    id="governance.W001",
                )
            )
            continue  # a superuser is also every owner; one warning says it
        if owner:
            found.append(
                checks.Warning(
                    f"The database user {user!r} of {alias!r} owns the audit table (or is a member "
                    "of its owner's role): it can switch off the append-only triggers. Fine for "
                    "the role that runs `migrate`; the application should connect as another.",
                    hint=HINT,
                    id="governance.W002",
                )
            )
        if bypass_rls:
            found.append(
                checks.Warning(
                    f"The database user {user!r} of {alias!r} has BYPASSRLS, more than the "
                    "application needs.",
                    hint=HINT,
                    id="governance.W003",
                )
            )
    return found
