"""Services send Celery tasks by their registered name (core.tasks.enqueue_on_commit, issue
13): the task is looked up inside the change's transaction, so a name nobody registered fails
the change at once; a registered one is sent after the commit, never for a rolled-back change,
and a broker outage after the commit is logged, not raised. Every name the services send, and
every task celery beat runs, is registered in a web process that only set Django up."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import current_app
from celery.exceptions import NotRegistered
from django.contrib.auth.models import User
from django.db import transaction

from core.models import AuditEvent
from core.tasks import enqueue_on_commit
from governance import notifications, webhooks
from registry.models import Artifact, PackagingJob
from registry.services import jobs
from tests.factories import make_artifact, make_model, make_version

ROOT = Path(__file__).resolve().parent.parent
SEND_EMAIL = "governance.tasks.send_email"


class BrokerDown(Exception):
    pass


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """What reaches the broker through the send_email task (its delay, replaced)."""
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(current_app.tasks[SEND_EMAIL], "delay", lambda *a: calls.append(a))
    return calls


def test_the_web_process_knows_every_task_by_name(tmp_path: Path) -> None:
    """What gunicorn loads (config.wsgi) registers the tasks from the apps' ready(), without
    the worker's autodiscovery and without any service having imported a tasks module."""
    code = (
        "import json, sys, config.wsgi; from celery import current_app; "
        "from django.conf import settings; "
        "print(json.dumps({'tasks': sorted(current_app.tasks), "
        "'beat': sorted(e['task'] for e in settings.CELERY_BEAT_SCHEDULE.values()), "
        "'loaded': sorted(m for m in sys.modules if m.endswith('.tasks'))}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "MODELGATE_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    wanted = {jobs.RUN_JOB, webhooks.DELIVER, notifications.SEND_EMAIL, *found["beat"]}
    assert "registry.tasks.sweep" in wanted and "governance.take_audit_checkpoint" in wanted
    assert wanted <= set(found["tasks"]), wanted - set(found["tasks"])
    assert {"registry.tasks", "governance.tasks", "core.tasks"} <= set(found["loaded"])


@pytest.mark.django_db
def test_an_unknown_task_name_fails_at_once_and_the_change_rolls_back(sent) -> None:
    with pytest.raises(NotRegistered), transaction.atomic():
        User.objects.create(username="kept-only-if-sent")
        enqueue_on_commit("governance.tasks.no_such_task", 1)
    assert not User.objects.filter(username="kept-only-if-sent").exists()
    assert sent == []


@pytest.mark.django_db
def test_a_service_sending_an_unregistered_task_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, data_scientist: User
) -> None:
    """An upload starts its inspection job in its own transaction: a misnamed task fails the
    upload (no file, no job, no audit event) instead of leaving a job no worker will run."""
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    monkeypatch.setattr(jobs, "RUN_JOB", "registry.tasks.run_jobs")
    with pytest.raises(NotRegistered):
        make_artifact(data_scientist, version, inspect=False)
    assert not Artifact.objects.exists() and not PackagingJob.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["artifact.uploaded", "job.started"]).exists()
    monkeypatch.undo()
    make_artifact(data_scientist, version)  # the real name: stored, inspected by the task
    assert PackagingJob.objects.get().status == PackagingJob.Status.SUCCEEDED


@pytest.mark.django_db
def test_a_task_is_sent_after_the_commit_and_never_for_a_rolled_back_change(
    sent, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_on_commit(SEND_EMAIL, "subject", "body", ["a@example.com"])
        assert sent == []  # not before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [("subject", "body", ["a@example.com"])]

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(BrokerDown),
        transaction.atomic(),
    ):
        enqueue_on_commit(SEND_EMAIL, "rolled back", "", [])
        raise BrokerDown()  # any error undoing the change
    assert callbacks == [] and len(sent) == 1


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_after_the_commit_is_logged_and_the_change_stands(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(*args: object) -> None:
        raise BrokerDown("broker unreachable")

    monkeypatch.setattr(current_app.tasks[SEND_EMAIL], "delay", down)
    with caplog.at_level(logging.ERROR), transaction.atomic():
        User.objects.create(username="committed")
        enqueue_on_commit(SEND_EMAIL, "s", "b", ["a@example.com"])
    assert User.objects.filter(username="committed").exists()
    assert "broker unreachable" in caplog.text

    caplog.clear()  # outside a transaction (the sweeper): sent at once, an outage logged too
    with caplog.at_level(logging.ERROR):
        enqueue_on_commit(SEND_EMAIL, "s", "b", ["a@example.com"])
    assert "broker unreachable" in caplog.text
    with pytest.raises(NotRegistered):
        enqueue_on_commit("no.such.task")  # an unknown name is never swallowed
