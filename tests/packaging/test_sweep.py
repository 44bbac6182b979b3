"""The sweeper queues again what a lost message left behind, and a second message for a job
never runs it twice."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import PackagingJob
from registry.services import jobs
from registry.tasks import run_job, sweep
from tests.factories import actor_for, make_artifact, make_model, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(data_scientist):
    """An inspect job whose message never reached a worker."""
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    make_artifact(data_scientist, version, pickle.dumps({"a": 1}), "m.pkl", inspect=False)
    return PackagingJob.objects.get()


def _age(job: PackagingJob, seconds: int) -> None:
    PackagingJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds))


def test_a_queued_job_whose_message_was_lost_runs_after_the_sweep(
        job, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 0  # recent: its message may still come
    _age(job, settings.SWEEP_AFTER + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 1


def test_a_job_whose_worker_died_unnoticed_is_retried_then_given_up(
        job, settings, django_capture_on_commit_callbacks):
    claimed = jobs.job_claim(job.pk, "task-a")
    assert claimed.status == "running"
    silent = settings.CELERY_TASK_TIME_LIMIT + settings.SWEEP_AFTER + 1
    _age(job, settings.CELERY_TASK_TIME_LIMIT)  # within the time limit: maybe still working
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get() == {"requeued": 0, "failed": 0, "deliveries": 0}
    _age(job, silent)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2

    again, _ = jobs.job_start(actor=actor_for(job.requested_by), version=job.version,
                              kind="inspect", force=True)
    jobs.job_claim(again.pk, "task-c")
    PackagingJob.objects.filter(pk=again.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
    _age(again, silent)
    assert sweep.apply().get()["failed"] == 1
    again.refresh_from_db()
    assert again.status == "failed" and "lost its worker 3 times" in again.error


def test_a_second_message_for_a_running_job_does_nothing(job):
    jobs.job_claim(job.pk, "task-a")
    assert run_job.apply(args=[job.pk], task_id="task-b").get() == "nothing to do"
    job.refresh_from_db()
    assert job.status == "running" and job.attempts == 1 and job.task_id == "task-a"
    # The same message redelivered after its worker died takes the job over and finishes it.
    assert run_job.apply(args=[job.pk], task_id="task-a").get() == "succeeded"
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2
