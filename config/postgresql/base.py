"""PostgreSQL backend that chains audit events at commit (config/chain_commit.py) and knows the
audit table refuses TRUNCATE.

Triggers make ``governance_auditevent`` append-only (migration governance 0003). Django's
``flush`` empties every table with one TRUNCATE, which the trigger refuses, as it should in
production. Test suites flush between transactional tests, so with ``AUDIT_ALLOW_FLUSH`` on
(the test configuration sets it; production never should) a flush disables the truncate
trigger for the length of its own transaction. Disabling a trigger needs the table owner's
rights, which is why the application should not run as the owner in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base, operations

from config.chain_commit import ChainsAuditAtCommit

AUDIT_TABLE = "governance_auditevent"
TRUNCATE_TRIGGER = "auditevent_no_truncate"


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(
        self,
        style: Any,
        tables: Sequence[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        sql = super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if AUDIT_TABLE not in tables or not getattr(settings, "AUDIT_ALLOW_FLUSH", False):
            return sql
        return [
            f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {TRUNCATE_TRIGGER};",
            *sql,
            f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {TRUNCATE_TRIGGER};",
        ]


class DatabaseWrapper(ChainsAuditAtCommit, base.DatabaseWrapper):
    """Appends a transaction's audit events at its commit (config.chain_commit)."""

    ops_class = DatabaseOperations
