"""What an attacker with database rights does to the audit log, and how the audit commands
answer: their exit status and what they print."""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from django.core.management import CommandError, call_command
from django.db import connection

from core import chain
from core.models import AuditEvent


@dataclass(frozen=True)
class Outcome:
    status: int
    out: str
    err: str


def run(command: str, *args: str) -> Outcome:
    """Run a management command as `manage.py` would and keep its exit status."""
    out, err = StringIO(), StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err)
    except CommandError as exc:
        return Outcome(exc.returncode, out.getvalue(), str(exc))
    except SystemExit as exc:
        return Outcome(int(exc.code or 0), out.getvalue(), err.getvalue())
    return Outcome(0, out.getvalue(), err.getvalue())


def tamper(sql: str, params: list[object] | None = None) -> None:
    """Run SQL against the audit table as its owner or a superuser could: on PostgreSQL the
    append-only triggers are switched off for it (inside the test's transaction)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")


def rehash_from(sequence: int) -> None:
    """Recompute every hash and link from `sequence` to the head, as a careful forger would
    after editing an event: the chain alone then verifies again."""
    prev = (
        AuditEvent.objects.filter(sequence=sequence - 1).values_list("hash", flat=True).first()
        or chain.GENESIS
    )
    rows = AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence")
    for row in list(rows.values(*chain.FIELDS)):
        row["prev_hash"] = prev
        prev = chain.event_hash(row)
        tamper(
            "UPDATE governance_auditevent SET prev_hash = %s, hash = %s WHERE sequence = %s",
            [row["prev_hash"], prev, row["sequence"]],
        )
