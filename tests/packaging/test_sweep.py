"""Jobs recover in about a minute: a running job's worker beats; the sweeper (beat, and each
worker as it starts) queues again what a lost message or a silent worker left behind, and
gives up after JOB_MAX_ATTEMPTS; a worker that was only slow cannot complete the job a second
time; asking again for a stuck job starts its next attempt; stale upload spool files go.

Tasks run eagerly here (the real-worker SIGKILL case is in test_worker.py)."""

from __future__ import annotations

import os
import pickle
import threading
import time
from datetime import timedelta

import pytest
from celery.signals import worker_ready
from django.utils import timezone

from core.models import AuditEvent
from registry.models import Artifact, PackagingJob
from registry.packaging.heartbeat import heartbeat
from registry.services import artifacts, jobs
from registry.tasks import run_job, sweep
from tests.factories import actor_for, make_artifact, make_model, make_version

pytestmark = pytest.mark.django_db
V = "/api/v1/models/churn/versions/1/"


@pytest.fixture
def job(data_scientist):
    """An inspect job whose message never reached a worker."""
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    make_artifact(data_scientist, version, pickle.dumps({"a": 1}), "m.pkl", inspect=False)
    return PackagingJob.objects.get()


def _age(job: PackagingJob, seconds: int, **fields) -> None:
    """Make the job's last change (and by default its heartbeat) `seconds` old."""
    then = timezone.now() - timedelta(seconds=seconds)
    PackagingJob.objects.filter(pk=job.pk).update(
        **{"updated_at": then, "heartbeat_at": then, **fields}
    )


def _events(job: PackagingJob, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(job.pk)))


def test_a_queued_job_whose_message_was_lost_runs_after_the_sweep(
    job, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 0  # recent: its message may still come
    _age(job, settings.SWEEP_AFTER + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 1


def test_a_job_whose_worker_fell_silent_is_queued_again_then_given_up(
    job, settings, django_capture_on_commit_callbacks
):
    jobs.job_claim(job.pk, "task-a")
    _age(job, settings.JOB_HEARTBEAT_TIMEOUT - 5)  # a beat missed or two: maybe still alive
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get() == {
            "requeued": 0,
            "failed": 0,
            "deliveries": 0,
            "spool_files": 0,
        }
    _age(job, settings.JOB_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2  # the new attempt ran it
    [requeued] = _events(job, "job.requeued")
    assert requeued.details["attempts"] == 1 and requeued.details["silent_seconds"] >= 61
    assert "no heartbeat from its worker" in job.log and "attempt 2" in job.log

    again, _ = jobs.job_start(
        actor=actor_for(job.requested_by), version=job.version, kind="inspect", force=True
    )
    jobs.job_claim(again.pk, "task-c")
    PackagingJob.objects.filter(pk=again.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
    _age(again, settings.JOB_HEARTBEAT_TIMEOUT + 1)
    assert sweep.apply().get()["failed"] == 1
    again.refresh_from_db()
    assert again.status == "failed"
    assert again.error.startswith("The job lost its worker 3 times (no heartbeat for 6")
    assert "JOB_MAX_ATTEMPTS=3" in again.error
    assert len(_events(again, "job.failed")) == 1 and not _events(again, "job.requeued")


def test_a_living_worker_s_job_stuck_in_a_long_step_is_not_queued_again(
    job, settings, django_capture_on_commit_callbacks
):
    jobs.job_claim(job.pk, "task-a")
    # No progress for an hour, but its worker beat a moment ago: working, not lost.
    _age(job, 3600, heartbeat_at=timezone.now() - timedelta(seconds=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 0
    job.refresh_from_db()
    assert (job.status, job.attempts, job.task_id) == ("running", 1, "task-a")


def test_a_slow_worker_that_comes_back_cannot_complete_the_job_again(
    job, settings, data_scientist, django_capture_on_commit_callbacks
):
    stale = jobs.job_claim(job.pk, "task-a")
    _age(job, settings.JOB_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=False):  # queued again, not yet taken
        assert sweep.apply().get()["requeued"] == 1
    with pytest.raises(jobs.Cancelled):
        jobs.job_progress(stale, 50, "still here")
    assert run_job.apply(args=[job.pk], task_id="task-b").get() == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.task_id) == ("succeeded", 2, "task-b")
    # The first worker wakes up: its beat, progress, derived file and result are refused.
    assert not jobs.job_heartbeat(stale)
    with pytest.raises(jobs.Cancelled):
        jobs.job_progress(stale, 90, "storing")
    with pytest.raises(jobs.Cancelled):
        artifacts.artifact_upload(
            actor=actor_for(data_scientist),
            version=job.version,
            filename="late.onnx",
            chunks=[b"\x08\x01"],
            derived_from=job.artifact,
            derived_by_job=stale,
        )
    with pytest.raises(jobs.Cancelled):
        jobs.job_finish(stale, {"late": True})
    job.refresh_from_db()
    assert "late" not in job.result and job.attempts == 2
    assert not Artifact.objects.filter(filename="late.onnx").exists()
    assert len(_events(job, "job.succeeded")) == 1


def test_asking_again_for_a_stuck_job_starts_its_next_attempt(
    api, job, settings, data_scientist, django_capture_on_commit_callbacks
):
    client = api(data_scientist)
    jobs.job_claim(job.pk, "task-a")
    _age(job, settings.JOB_HEARTBEAT_TIMEOUT - 5)
    r = client.post(f"{V}jobs/", {"kind": "inspect"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "running"  # alive: the same job
    _age(job, settings.JOB_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "inspect"}, format="json")
    assert r.status_code == 200 and r.json()["id"] == job.pk
    assert (r.json()["status"], r.json()["attempts"]) == ("queued", 1)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert _events(job, "job.requeued")[0].actor_id == data_scientist.pk

    # Out of attempts, the stuck job fails for good and the request starts a new job.
    stuck, _ = jobs.job_start(
        actor=actor_for(data_scientist), version=job.version, kind="inspect", force=True
    )
    jobs.job_claim(stuck.pk, "task-c")
    _age(stuck, settings.JOB_HEARTBEAT_TIMEOUT + 1, attempts=settings.JOB_MAX_ATTEMPTS)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "inspect"}, format="json")
    assert r.status_code == 200 and r.json()["id"] == job.pk  # the earlier success
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "lost its worker 3 times" in stuck.error


def test_a_starting_worker_queues_again_the_jobs_of_a_dead_one(
    job, settings, django_capture_on_commit_callbacks
):
    jobs.job_claim(job.pk, "task-a")
    _age(job, settings.JOB_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=True):
        worker_ready.send(sender=None)  # what a celery worker sends once it is ready
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert len(_events(job, "job.requeued")) == 1


def test_a_message_that_keeps_coming_back_fails_after_max_attempts(job, settings):
    """A model that kills its worker gets its message redelivered (acks late, reject on worker
    lost); the same task id takes the job over, but not for ever."""
    jobs.job_claim(job.pk, "task-a")
    PackagingJob.objects.filter(pk=job.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
    assert run_job.apply(args=[job.pk], task_id="task-a").get() == "nothing to do"
    job.refresh_from_db()
    assert job.status == "failed" and "lost its worker 3 times (its message came back)" in job.error


def test_a_second_message_for_a_running_job_does_nothing(job):
    jobs.job_claim(job.pk, "task-a")
    assert run_job.apply(args=[job.pk], task_id="task-b").get() == "nothing to do"
    job.refresh_from_db()
    assert job.status == "running" and job.attempts == 1 and job.task_id == "task-a"
    # The same message redelivered after its worker died takes the job over and finishes it.
    assert run_job.apply(args=[job.pk], task_id="task-a").get() == "succeeded"
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2


def _until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_comes_from_the_worker_process_not_from_progress(job, settings):
    PackagingJob.objects.filter(pk=job.pk).update(status="queued", progress=0)  # it ran here
    claimed = jobs.job_claim(job.pk, "task-a")
    _age(job, 3600)
    row = PackagingJob.objects.filter(pk=job.pk)
    before = set(threading.enumerate())
    with heartbeat(claimed, interval=0.05):
        # The job makes no progress (a long step); the worker's thread beats anyway.
        assert _until(lambda: row.get().heartbeat_at > timezone.now() - timedelta(seconds=30))
        assert row.get().updated_at < timezone.now() - timedelta(seconds=3000)
        assert row.get().progress == 0
        # Queued again (its beat was late): the thread notices and stops beating.
        row.update(status="queued", heartbeat_at=None)
        assert _until(lambda: not (set(threading.enumerate()) - before))
    assert row.get().heartbeat_at is None


def test_stale_spool_files_are_swept_but_never_an_upload_in_progress(
    settings, data_scientist, django_capture_on_commit_callbacks
):
    spool = settings.UPLOAD_SPOOL_DIR
    spool.mkdir(parents=True, exist_ok=True)
    killed = spool / "upload-killed"  # what a killed upload left behind
    killed.write_bytes(b"x" * 100)
    old = time.time() - settings.UPLOAD_SPOOL_MAX_AGE - 60
    os.utime(killed, (old, old))
    (spool / "upload-recent").write_bytes(b"y")
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    swept = []

    def chunks():  # an upload that is half-way through when the sweeper runs
        yield pickle.dumps({"a": 1})
        swept.append(sweep.apply().get()["spool_files"])
        yield b""

    with django_capture_on_commit_callbacks(execute=True):
        artifact = artifacts.artifact_upload(
            actor=actor_for(data_scientist), version=version, filename="m.pkl", chunks=chunks()
        )
    assert swept == [1] and not killed.exists() and (spool / "upload-recent").exists()
    artifact.refresh_from_db()
    assert artifact.size == len(pickle.dumps({"a": 1})) and artifact.safety == "safe"
    assert sweep.apply().get()["spool_files"] == 0


def test_the_same_bytes_under_a_second_name_show_the_verdict_too(
    data_scientist, django_capture_on_commit_callbacks
):
    """An inspection is of bytes: a second file with them (a bundle rebuilt after the first
    was deleted, a copy) reuses it rather than showing "not yet" for ever."""
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    data = pickle.dumps({"weights": [1, 2]})
    first = make_artifact(data_scientist, version, data, "a.pkl")
    second = make_artifact(data_scientist, version, data, "b.pkl")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.safety == second.safety == "safe"
    # Both uploaded before either is inspected: one job, both files judged.
    third_version = make_version(data_scientist, version.registered_model)
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("c.pkl", "d.pkl"):
            artifacts.artifact_upload(
                actor=actor_for(data_scientist), version=third_version, filename=name, chunks=[data]
            )
    assert set(third_version.artifacts.values_list("safety", flat=True)) == {"safe"}
