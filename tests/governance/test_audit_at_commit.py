"""A transaction's audit events are chained when it commits (core.audit, config.chain_commit):
writers do not wait for each other's uncommitted events, a transaction's events stay one
contiguous run in commit order, rolled-back savepoints take their events with them, a
transaction reads its own events, and a change whose events cannot be appended does not
commit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import DatabaseError, connection, transaction

from core import audit, chain
from core.actors import Actor
from core.models import AuditEvent
from registry.models import RegisteredModel
from tests.concurrency import all_at_once
from tests.factories import UserFactory, make_model

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def actor() -> Actor:
    return Actor(user=UserFactory(username="writer", is_superuser=True), channel="api")


def _record(actor: Actor, action: str, **details: Any) -> None:
    audit.record(actor=actor, action=action, target=None, details=details)


def _actions(prefix: str) -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith=prefix)
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def _intact() -> None:
    verdict = audit.verify()
    assert verdict.ok, verdict
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))


@pytest.mark.postgres
def test_a_writer_does_not_wait_for_another_s_uncommitted_events(actor):
    """A records an event and stays in its transaction until B has recorded and committed
    one. Were the chain locked from A's record() to its commit, B would wait for A, A would
    give up waiting for B and roll back."""
    recorded, b_done = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def a() -> None:
        try:
            with transaction.atomic():
                _record(actor, "test.a")
                recorded.set()
                outcome["b_committed_first"] = b_done.wait(timeout=5)
                if not outcome["b_committed_first"]:
                    raise TimeoutError("B did not commit while A was open")
        except TimeoutError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=a)
    thread.start()
    assert recorded.wait(timeout=10)
    try:
        with transaction.atomic():
            _record(actor, "test.b")
    finally:
        b_done.set()
        thread.join(timeout=30)
    assert outcome == {"b_committed_first": True}
    assert _actions("test.") == ["test.b", "test.a"]  # chained in commit order
    _intact()


def test_each_transaction_s_events_are_one_run_in_commit_order(actor):
    def write(i: int) -> None:
        for j in range(3):
            with transaction.atomic():
                for k in range(3):
                    _record(actor, "test.run", writer=i, tx=j, n=k)

    all_at_once(6, write, close_connections=True)
    rows = list(
        AuditEvent.objects.filter(action="test.run")
        .order_by("sequence")
        .values_list("sequence", "details")
    )
    assert len(rows) == 6 * 3 * 3
    for start in range(0, len(rows), 3):
        run = rows[start : start + 3]
        assert [d["n"] for _, d in run] == [0, 1, 2]
        assert len({(d["writer"], d["tx"]) for _, d in run}) == 1
        assert [s for s, _ in run] == list(range(run[0][0], run[0][0] + 3))
    _intact()


def test_a_rolled_back_savepoint_takes_its_events_and_leaves_no_gap(actor):
    with transaction.atomic():
        _record(actor, "test.1-kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            _record(actor, "test.2-dropped")
            raise RuntimeError
        _record(actor, "test.3-kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        _record(actor, "test.4-dropped")
        raise RuntimeError
    assert _actions("test.") == ["test.1-kept", "test.3-kept"]
    _intact()


def _waiting() -> list[str]:
    """The actions recorded in this transaction and not yet in the table."""
    return [event.action for _, event in connection.audit_pending]  # type: ignore[attr-defined]


def test_a_transaction_reads_its_own_events(actor):
    with transaction.atomic():
        _record(actor, "test.1-mine")
        assert _waiting() == ["test.1-mine"]
        # a read inside a savepoint appends what waits there; rolling the savepoint back
        # undoes that insert, and the event recorded before the savepoint waits again
        with pytest.raises(RuntimeError), transaction.atomic():
            _record(actor, "test.2-dropped")
            assert _actions("test.") == ["test.1-mine", "test.2-dropped"]
            assert _waiting() == []
            raise RuntimeError
        assert _waiting() == ["test.1-mine"]
        assert _actions("test.") == ["test.1-mine"]
        _record(actor, "test.3-mine")
        assert _actions("test.") == ["test.1-mine", "test.3-mine"]
        _record(actor, "test.4-mine")
    assert _actions("test.") == ["test.1-mine", "test.3-mine", "test.4-mine"]
    _intact()


def test_every_statement_on_the_audit_table_sees_the_transaction_s_events(actor):
    """Not only a fresh AuditEvent query: one built before the event and run after it, a join
    from another table, raw SQL."""
    with transaction.atomic():
        built_before = AuditEvent.objects.filter(action="test.seen")
        _record(actor, "test.seen")
        assert built_before.count() == 1
    with transaction.atomic():
        _record(actor, "test.joined")
        assert User.objects.filter(audit_events__action="test.joined").get() == actor.user
    with transaction.atomic():
        _record(actor, "test.raw")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM governance_auditevent WHERE action = %s", ["test.raw"]
            )
            assert cursor.fetchone() == (1,)
    _intact()


def test_a_manual_savepoint_rolled_back_takes_its_events(actor):
    with transaction.atomic():
        _record(actor, "test.1-kept")
        sid = transaction.savepoint()
        _record(actor, "test.2-dropped")
        Group.objects.create(name="dropped")
        transaction.savepoint_rollback(sid)
        _record(actor, "test.3-kept")
        transaction.savepoint_commit(sid)
    assert not Group.objects.filter(name="dropped").exists()
    assert _actions("test.") == ["test.1-kept", "test.3-kept"]
    _intact()


def test_events_recorded_after_a_close_die_with_the_transaction(actor):
    with transaction.atomic():
        connection.close()
        _record(actor, "test.after-close")
    with transaction.atomic():
        _record(actor, "test.next")
    assert _actions("test.") == ["test.next"]
    _intact()


def test_manual_transactions_commit_with_their_events(actor):
    transaction.set_autocommit(False)
    try:
        with transaction.atomic():
            _record(actor, "test.manual")
            Group.objects.create(name="manual")
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert Group.objects.filter(name="manual").exists()
    assert _actions("test.") == ["test.manual"]
    _intact()


def _hash_fails(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def broken(fields: dict[str, object]) -> str:
        raise error

    monkeypatch.setattr(chain, "event_hash", broken)


def test_a_change_whose_events_cannot_be_appended_does_not_commit(actor, monkeypatch):
    _hash_fails(monkeypatch, RuntimeError("hash function unavailable"))
    with (
        pytest.raises(DatabaseError, match="audit events could not be appended"),
        transaction.atomic(),
    ):
        make_model(actor.user, "never-committed")
    monkeypatch.undo()
    assert not RegisteredModel.objects.filter(name="never-committed").exists()
    make_model(actor.user, "committed")  # the connection is usable again
    assert _actions("registered_model.") == ["registered_model.created"]
    _intact()


def test_an_interrupt_while_appending_commits_nothing(actor, monkeypatch):
    """Not an Exception (a worker's timeout, ^C): Atomic does not roll back for it, and
    SQLite's driver would commit when autocommit comes back on."""
    _hash_fails(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt), transaction.atomic():
        Group.objects.create(name="interrupted")
        _record(actor, "test.interrupted")
    monkeypatch.undo()
    assert not Group.objects.filter(name="interrupted").exists()
    assert _actions("test.") == []


def test_a_failed_append_during_a_read_stops_the_commit(actor, monkeypatch):
    """The read's error is caught inside a savepoint and the transaction goes on: it must
    not commit without the event whose append failed."""
    with pytest.raises(DatabaseError, match="could not be appended"), transaction.atomic():
        Group.objects.create(name="unaudited")
        _record(actor, "test.lost")
        _hash_fails(monkeypatch, RuntimeError("hash function unavailable"))
        with pytest.raises(RuntimeError), transaction.atomic():
            AuditEvent.objects.count()
        monkeypatch.undo()
    assert not Group.objects.filter(name="unaudited").exists()
    assert _actions("test.") == []
    with transaction.atomic():
        _record(actor, "test.after")
    assert _actions("test.") == ["test.after"]
    _intact()


@pytest.mark.django_db(transaction=False)
def test_inside_a_test_s_transaction_events_are_appended_when_the_block_ends(actor):
    """A test's wrapping transaction never commits: the outermost block of the code under
    test appends its events when it ends."""
    with transaction.atomic():
        _record(actor, "test.in-test")
        assert _waiting() == ["test.in-test"]
    assert _waiting() == []
    assert AuditEvent.objects.filter(action="test.in-test").count() == 1
    _intact()
