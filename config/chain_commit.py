"""What both database backends add so that a transaction's audit events are chained when it
commits (core.audit): the events wait on the connection and are appended just before COMMIT,
under the chain lock, which is then held only for that instant and the COMMIT.

The connection keeps, per thread like the connection itself:

- `audit_pending`: events recorded and not yet in the table, each with the savepoints open
  when it was recorded (Atomic's and manual ones alike). Rolling a savepoint back drops the
  events recorded inside it, as the database drops the rows written inside it.
- `audit_appended`: events appended before the commit, each batch with the savepoints open
  when it was inserted. Any statement that reads or writes the audit table appends what is
  pending first (an execute wrapper: ORM queries, joins through relations, raw SQL), so a
  transaction always sees its own events. Rolling back a savepoint open at such an insert
  undoes it: the events recorded outside that savepoint wait again, for the commit.
- `audit_broken`: an append failed. The transaction may not commit (`_commit` raises) until it
  is rolled back: a change never commits without its events.

Every way a transaction ends forgets what is left: commit, rollback, close, and a new
connection. A test's wrapping transaction (Django's TestCase, pytest-django's `db`) never
commits: when the outermost block of the code under test ends inside one, its events are
appended there, as its commit would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

AUDIT_TABLE = "governance_auditevent"
Savepoints = frozenset[str]


class ChainsAuditAtCommit:
    """Mixed into config's PostgreSQL and SQLite DatabaseWrappers (before Django's class)."""

    # What Django's DatabaseWrapper provides (this class is only ever mixed into one).
    atomic_blocks: list[Any]
    execute_wrappers: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audit_pending: list[tuple[Savepoints, Any]] = []
        self.audit_appended: list[tuple[Savepoints, list[tuple[Savepoints, Any]]]] = []
        self.audit_broken = False
        self._audit_savepoints: list[str] = []  # open, oldest first
        self.execute_wrappers.append(self._audit_before_statement)

    # -- what core.audit asks ------------------------------------------------------------------

    def audit_defers(self) -> bool:
        """Whether a commit will come that appends this transaction's events: a block other
        than a test's wrapping transaction is open."""
        return any(not block._from_testcase for block in self.atomic_blocks)

    def audit_wait(self, event: Any) -> None:
        """Keep `event` for the commit, tagged with the savepoints open now."""
        self.audit_pending.append((frozenset(self._audit_savepoints), event))

    def audit_append_pending(self) -> None:
        """Append the waiting events now (before a statement on the audit table, or COMMIT).
        A failure marks the transaction: it can no longer commit."""
        if not self.audit_pending:
            return
        from core import audit  # here, not above: the backend loads before the apps' models

        pending, self.audit_pending = self.audit_pending, []
        try:
            audit.append([event for _, event in pending])
        except BaseException:
            self.audit_broken = True
            raise
        self.audit_appended.append((frozenset(self._audit_savepoints), pending))

    def _audit_before_statement(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        if self.audit_pending and AUDIT_TABLE in str(sql):
            self.audit_append_pending()
        return execute(sql, params, many, context)

    def _audit_forget(self) -> None:
        self.audit_pending, self.audit_appended = [], []
        self._audit_savepoints = []
        self.audit_broken = False

    # -- the end of a transaction --------------------------------------------------------------

    def _commit(self) -> None:
        try:
            if self.audit_broken:
                raise DatabaseError("An audit event of this transaction could not be appended.")
            self.audit_append_pending()
        except BaseException as exc:
            # Nothing of this change may commit without its events: roll back here, since
            # Atomic rolls back after a DatabaseError only, and SQLite's driver would commit
            # the open transaction when autocommit comes back on.
            self._rollback()
            if isinstance(exc, Exception) and not isinstance(exc, DatabaseError):
                raise DatabaseError(f"The audit events could not be appended: {exc}") from exc
            raise
        super()._commit()  # type: ignore[misc]
        self._audit_forget()

    def _rollback(self) -> None:
        self._audit_forget()
        super()._rollback()  # type: ignore[misc]

    def _set_autocommit(self, autocommit: bool) -> None:
        if autocommit and self.audit_pending:
            # Turning autocommit on commits an open transaction on SQLite (PostgreSQL refuses
            # while one is open): its events go in first.
            self.audit_append_pending()
        super()._set_autocommit(autocommit)  # type: ignore[misc]

    def connect(self) -> None:
        self._audit_forget()  # events recorded after a close in a block die with it
        super().connect()  # type: ignore[misc]

    def close(self) -> None:
        self._audit_forget()
        super().close()  # type: ignore[misc]

    # -- savepoints (Atomic's and transaction.savepoint()'s) -----------------------------------

    def _savepoint(self, sid: str) -> None:
        super()._savepoint(sid)  # type: ignore[misc]
        self._audit_savepoints.append(sid)

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)  # type: ignore[misc]
        if sid in self._audit_savepoints:  # the savepoints made after it are gone too
            del self._audit_savepoints[self._audit_savepoints.index(sid) + 1 :]
        waiting: list[tuple[Savepoints, Any]] = []
        kept = []
        for appended_in, batch in self.audit_appended:
            if sid not in appended_in:
                kept.append((appended_in, batch))
                continue
            for recorded_in, event in batch:  # the insert is undone
                if sid not in recorded_in:
                    event.pk = None
                    event._state.adding = True
                    waiting.append((recorded_in, event))
        self.audit_appended = kept
        self.audit_pending = waiting + [
            (recorded_in, event)
            for recorded_in, event in self.audit_pending
            if sid not in recorded_in
        ]

    def _savepoint_commit(self, sid: str) -> None:
        super()._savepoint_commit(sid)  # type: ignore[misc]
        if sid in self._audit_savepoints:
            del self._audit_savepoints[self._audit_savepoints.index(sid) :]
        if self.audit_pending and self.atomic_blocks and not self.audit_defers():
            self.audit_append_pending()  # the end of the outermost block under a test's wrapper
