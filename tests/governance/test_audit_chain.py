"""The audit log is a hash chain: verify_audit_log finds the first edited, deleted or inserted
event, checkpoints catch a truncated tail, and PostgreSQL refuses to rewrite the table. The
tampering runs on both databases: on PostgreSQL as a superuser would, with the triggers off."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from core import audit
from core.actors import Actor
from core.models import AuditEvent
from tests.concurrency import all_at_once
from tests.factories import UserFactory, actor_for, make_model
from tests.governance.tampering import run, tamper

pytestmark = pytest.mark.django_db


def _verify(*args: str) -> str:
    """The chain's verdict when it holds; without a checkpoint nothing vouches for it (2)."""
    outcome = run("verify_audit_log", *args)
    assert outcome.status in (0, 2), outcome
    assert (outcome.status == 2) == ("WARNING" in outcome.err)
    return outcome.out


def _broken(*args: str) -> str:
    outcome = run("verify_audit_log", *args)
    assert outcome.status == 1, outcome
    return outcome.err


def test_events_form_a_gapless_chain_and_verify_ok(history):
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    assert history[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(history, history[1:], strict=False))
    assert _verify().startswith(f"OK: {len(history)} events")


def test_values_that_databases_reshape_still_verify(data_scientist):
    """jsonb prints 1e20 as an integer and refuses NUL; the chain must survive the round trip."""
    with transaction.atomic():
        audit.record(
            actor=actor_for(data_scientist),
            action="test.odd_values",
            target=None,
            details={
                "big": 1e20,
                "tiny": 1.5e-10,
                "one": 1.0,
                "nan": float("nan"),
                "nul": "a\x00b",
                "nested": [{"ü": "✓"}],
                3: None,
            },
        )
    assert _verify().startswith("OK:")


def test_an_edited_event_is_named(history):
    target = history[3]
    tamper(
        "UPDATE governance_auditevent SET details = %s WHERE sequence = %s",
        ['{"key": "forged"}', target.sequence],
    )
    message = _broken()
    assert f"event {target.sequence}:" in message and "edited" in message


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(history):
    target = history[3]
    tamper(
        "UPDATE governance_auditevent SET action = 'nothing.happened', hash = %s "
        "WHERE sequence = %s",
        ["f" * 64, target.sequence],
    )
    message = _broken()
    assert f"event {target.sequence}:" in message  # its own hash no longer matches its content
    # A forger who also recomputes the hash still breaks the link from the next event.
    row = AuditEvent.objects.filter(sequence=target.sequence).values(*audit.chain.FIELDS).get()
    tamper(
        "UPDATE governance_auditevent SET hash = %s WHERE sequence = %s",
        [audit.chain.event_hash(row), target.sequence],
    )
    assert f"event {target.sequence + 1}:" in _broken()


def test_a_deleted_event_is_named_by_the_gap_it_leaves(history):
    tamper("DELETE FROM governance_auditevent WHERE sequence = %s", [history[2].sequence])
    message = _broken()
    assert f"event {history[3].sequence}:" in message and "missing" in message


def test_a_truncated_tail_is_caught_by_the_checkpoint(history, tmp_path):
    out = StringIO()
    call_command("audit_checkpoint", stdout=out)
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(out.getvalue())
    assert json.loads(out.getvalue())["sequence"] == len(history)
    assert "extends the checkpoint" in _verify("--checkpoint", str(checkpoint))

    tamper("DELETE FROM governance_auditevent WHERE sequence = %s", [history[-1].sequence])
    assert _verify().startswith("OK:")  # the rest of the chain alone cannot tell
    assert "removed from its end" in _broken("--checkpoint", str(checkpoint))


def test_checkpoint_is_extended_by_later_events_and_refuses_a_forged_file(
    history, tmp_path, data_scientist
):
    out = StringIO()
    call_command("audit_checkpoint", stdout=out)
    doc = json.loads(out.getvalue())
    make_model(data_scientist, "later")
    checkpoint = tmp_path / "cp.json"
    checkpoint.write_text(json.dumps(doc))
    assert "by 1 events" in _verify("--checkpoint", str(checkpoint))

    checkpoint.write_text(json.dumps({**doc, "sequence": doc["sequence"] - 1}))
    assert "signature is wrong" in _broken("--checkpoint", str(checkpoint))
    checkpoint.write_text("not json")
    assert "Cannot read the checkpoint" in _broken("--checkpoint", str(checkpoint))


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE governance_auditevent SET action = 'x'",
        "DELETE FROM governance_auditevent",
        "TRUNCATE governance_auditevent",
    ],
)
def test_postgresql_refuses_to_rewrite_the_log(history, statement):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AuditEvent.objects.count() == len(history)


def test_deleting_a_user_keeps_their_events(history, data_scientist):
    data_scientist.delete()
    events = AuditEvent.objects.filter(actor_label="alice")
    assert events.count() >= 4
    assert _verify().startswith("OK:")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_append_one_chain_without_gaps():
    user = UserFactory(username="writer", is_superuser=True)
    actor = Actor(user=user, channel="api")

    def write(i: int) -> None:
        for j in range(5):
            try:
                with transaction.atomic():
                    audit.record(
                        actor=actor, action="test.write", target=None, details={"writer": i, "n": j}
                    )
                    if j == 2:  # a rolled-back change leaves no event and no gap
                        raise RuntimeError("roll back")
            except RuntimeError:
                pass

    all_at_once(8, write, close_connections=True)
    assert AuditEvent.objects.filter(action="test.write").count() == 8 * 4
    assert _verify().startswith(f"OK: {AuditEvent.objects.count()} events")
