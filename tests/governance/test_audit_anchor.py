"""Checkpoints kept outside the database: audit_checkpoint (by hand and on the beat schedule)
appends signed checkpoints to AUDIT_ANCHOR, and verify_audit_log checks the log against the
newest one. Without one it warns: an emptied or consistently re-hashed log passes the chain
check alone, which is the hole these tests hold closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.celery import app as celery_app
from core.models import AuditEvent
from tests.factories import make_model
from tests.governance.tampering import rehash_from, run, tamper

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anchor(settings, tmp_path) -> Path:
    """A file anchor in a folder that does not exist yet (audit_checkpoint creates it)."""
    settings.AUDIT_ANCHOR = str(tmp_path / "outside" / "audit-checkpoints.jsonl")
    return Path(settings.AUDIT_ANCHOR)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_checkpoints_are_appended_as_signed_lines_and_verify_uses_the_newest(
    history, anchor, data_scientist
):
    first = run("audit_checkpoint")
    assert first.status == 0 and json.loads(first.out)["sequence"] == len(history)
    make_model(data_scientist, "later")
    assert run("audit_checkpoint").status == 0
    lines = _lines(anchor)
    assert [line["sequence"] for line in lines] == [len(history), len(history) + 1]
    assert all(len(line["signature"]) == 64 for line in lines)

    outcome = run("verify_audit_log")
    assert outcome.status == 0, outcome
    assert f"extends the checkpoint of {lines[1]['created_at']}" in outcome.out
    assert "by 0 events" in outcome.out and outcome.err == ""
    make_model(data_scientist, "newest")
    assert "by 1 events" in run("verify_audit_log").out


def test_without_any_checkpoint_verify_warns_with_status_2(history, settings, anchor):
    settings.AUDIT_ANCHOR = ""
    outcome = run("verify_audit_log")
    assert outcome.status == 2
    assert outcome.out.startswith(f"OK: {len(history)} events")
    assert "WARNING: No checkpoint covers this log" in outcome.err
    assert "AUDIT_ANCHOR is not set" in outcome.err
    settings.AUDIT_ANCHOR = str(anchor)  # configured, but nothing taken yet
    outcome = run("verify_audit_log")
    assert outcome.status == 2 and "AUDIT_ANCHOR holds none yet" in outcome.err


def test_an_emptied_log_is_a_warning_without_a_checkpoint_and_broken_with_one(
    history, settings, anchor
):
    assert run("audit_checkpoint").status == 0
    tamper("DELETE FROM governance_auditevent")
    assert AuditEvent.objects.count() == 0

    outcome = run("verify_audit_log")
    assert outcome.status == 1 and "removed from its end" in outcome.err
    settings.AUDIT_ANCHOR = ""
    outcome = run("verify_audit_log")
    assert outcome.status == 2, outcome
    assert outcome.out.startswith("OK: 0 events") and "The audit log is empty" in outcome.err


def test_a_consistently_rehashed_chain_is_caught_by_the_anchor_and_never_sealed(
    history, settings, anchor
):
    assert run("audit_checkpoint").status == 0
    target = history[2]
    tamper(
        "UPDATE governance_auditevent SET details = %s WHERE sequence = %s",
        ['{"key": "forged"}', target.sequence],
    )
    rehash_from(target.sequence)

    settings.AUDIT_ANCHOR = ""
    alone = run("verify_audit_log")
    assert alone.status == 2 and alone.out.startswith("OK:")  # the chain alone cannot tell
    settings.AUDIT_ANCHOR = str(anchor)
    outcome = run("verify_audit_log")
    assert outcome.status == 1
    assert f"Event {len(history)} is not the event the checkpoint" in outcome.err
    assert "rewritten" in outcome.err

    refused = run("audit_checkpoint")
    assert refused.status == 1 and "Not sealing the audit log" in refused.err
    assert len(_lines(anchor)) == 1  # the rewritten head got no seal


def test_a_truncated_tail_is_caught_by_the_anchor(history, anchor):
    assert run("audit_checkpoint").status == 0
    tamper("DELETE FROM governance_auditevent WHERE sequence = %s", [history[-1].sequence])
    outcome = run("verify_audit_log")
    assert outcome.status == 1
    assert (
        f"The log ends at event {len(history) - 1} but the checkpoint" in outcome.err
        and "removed from its end" in outcome.err
    )


def test_a_forged_checkpoint_line_is_refused(history, anchor):
    assert run("audit_checkpoint").status == 0
    tamper("DELETE FROM governance_auditevent WHERE sequence = %s", [history[-1].sequence])
    line = _lines(anchor)[0]
    # Claim the shorter log was checkpointed later, without the key.
    forged = {
        **line,
        "sequence": line["sequence"] - 1,
        "hash": history[-2].hash,
        "created_at": "2999-01-01T00:00:00+00:00",
    }
    with anchor.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    outcome = run("verify_audit_log")
    assert outcome.status == 1
    assert f"signature is wrong at line 2 of {anchor}" in outcome.err and "refused" in outcome.err

    anchor.write_text(json.dumps(line) + "\n{torn")
    outcome = run("verify_audit_log")
    assert outcome.status == 1 and "line 2" in outcome.err and "not JSON" in outcome.err


def test_a_replayed_older_checkpoint_does_not_hide_a_truncated_tail(
    history, anchor, data_scientist
):
    assert run("audit_checkpoint").status == 0
    make_model(data_scientist, "more")
    assert run("audit_checkpoint").status == 0
    older, newer = anchor.read_text().splitlines()
    tamper("DELETE FROM governance_auditevent WHERE sequence = %s", [_lines(anchor)[1]["sequence"]])
    with anchor.open("a") as handle:  # a valid, older line appended again
        handle.write(older + "\n")
    outcome = run("verify_audit_log")
    assert outcome.status == 1 and "removed from its end" in outcome.err


def test_an_explicit_checkpoint_file_may_be_an_anchor_file(history, anchor, settings):
    assert run("audit_checkpoint").status == 0
    settings.AUDIT_ANCHOR = ""
    outcome = run("verify_audit_log", "--checkpoint", str(anchor))
    assert outcome.status == 0 and "extends the checkpoint" in outcome.out
    empty = anchor.with_name("empty.jsonl")
    empty.write_text("")
    outcome = run("verify_audit_log", "--checkpoint", str(empty))
    assert outcome.status == 2 and "the checkpoint file holds none" in outcome.err


def test_a_stale_checkpoint_is_a_warning(history, anchor, settings, data_scientist):
    assert run("audit_checkpoint").status == 0
    make_model(data_scientist, "after")
    assert run("verify_audit_log").status == 0  # newer than the next scheduled checkpoint
    settings.AUDIT_CHECKPOINT_INTERVAL = 0  # the next one was due long ago
    outcome = run("verify_audit_log")
    assert outcome.status == 2
    assert "1 events after the newest checkpoint" in outcome.err
    assert "is celery beat running?" in outcome.err


def test_object_store_anchor_keeps_one_object_per_checkpoint(
    history, settings, tmp_path, data_scientist
):
    """AUDIT_ANCHOR=s3://… goes through the Storage API of STORAGES["audit_anchor"] (S3Storage
    in production); a file system storage stands in for the bucket here."""
    bucket = tmp_path / "bucket"
    settings.AUDIT_ANCHOR = "s3://audit-bucket/modelgate"
    settings.STORAGES = {
        **settings.STORAGES,
        "audit_anchor": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(bucket)},
        },
    }
    assert run("verify_audit_log").status == 2  # no object yet
    assert run("audit_checkpoint").status == 0
    make_model(data_scientist, "later")
    assert run("audit_checkpoint").status == 0
    names = sorted(os.listdir(bucket))
    assert len(names) == 2 and all(n.startswith("checkpoint-") for n in names)
    assert names[0].startswith(f"checkpoint-{len(history):012d}-")
    outcome = run("verify_audit_log")
    assert outcome.status == 0 and f"(event {len(history) + 1}) by 0 events" in outcome.out

    # An older checkpoint copied under a newer name is not taken for a newer one.
    (bucket / "checkpoint-999999999999-29990101T000000000000Z.json").write_bytes(
        (bucket / names[0]).read_bytes()
    )
    outcome = run("verify_audit_log")
    assert outcome.status == 1 and "not the one its name says" in outcome.err


def test_beat_runs_the_checkpoint_task_every_interval(history, settings, anchor):
    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["schedule"] == settings.AUDIT_CHECKPOINT_INTERVAL == 3600
    celery_app.loader.import_default_modules()  # what a worker does as it starts
    task = celery_app.tasks[entry["task"]]
    doc = task.delay().get()
    assert _lines(anchor) == [doc] and doc["sequence"] == len(history)


def test_anchor_settings_come_from_the_environment(tmp_path):
    env = {
        "MODELGATE_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "AUDIT_CHECKPOINT_INTERVAL": "120",
        "AUDIT_ANCHOR": "s3://audit/modelgate/prod/",
    }
    code = (
        "import json, config.settings as s; print(json.dumps([s.CELERY_BEAT_SCHEDULE"
        "['audit-checkpoint'], s.STORAGES['audit_anchor']['OPTIONS']['bucket_name'], "
        "s.STORAGES['audit_anchor']['OPTIONS']['location']]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    schedule, bucket, prefix = json.loads(result.stdout)
    assert schedule == {"task": "governance.take_audit_checkpoint", "schedule": 120}
    assert (bucket, prefix) == ("audit", "modelgate/prod")

    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={**env, "AUDIT_ANCHOR": "relative/anchor.jsonl"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "AUDIT_ANCHOR must be an absolute" in result.stderr
