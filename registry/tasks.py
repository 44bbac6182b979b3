"""Celery tasks of the registry. They receive ids and load what they need."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError, connection

from registry import signals
from registry.models import PackagingJob
from registry.packaging import bento, bundle, convert, inspect
from registry.packaging.heartbeat import heartbeat
from registry.services import jobs
from registry.services.artifacts import spool_sweep

logger = logging.getLogger(__name__)
K = PackagingJob.Kind
HANDLERS: dict[str, Callable[[PackagingJob], dict[str, Any]]] = {
    K.INSPECT: inspect.run,
    K.CONVERT_ONNX: convert.run,
    K.INFER_SIGNATURE: convert.infer_signature,
    K.COMPARE_FORMATS: convert.compare_formats,
    K.BUNDLE: bundle.run,
    K.TORCHSCRIPT: convert.torchscript,
    K.BENTOML: bento.run,
}


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
    soft_time_limit=3000,
    time_limit=3300,
)
def run_job(self: Any, job_id: int) -> str:
    """Run one packaging job, as a new attempt. A killed worker's job falls silent and the
    sweeper queues it again (a lost worker's message is also redelivered: acks late, reject
    on worker loss); the job resumes from the start; database outages retry with backoff;
    anything else ends the job as failed with its message."""
    job = jobs.job_claim(job_id, self.request.id or "")
    if job is None:
        return "nothing to do"
    # A worker's thread beats while the job runs (an eager run is part of its caller, which
    # no sweeper can outlive); a job that falls silent is queued again by the sweeper.
    beating = contextlib.nullcontext() if self.request.is_eager else heartbeat(job)
    result: dict[str, Any] = {}
    try:
        with beating:
            result = HANDLERS[job.kind](job)
        failed = ""
    except jobs.Cancelled:
        return "cancelled"
    except (OperationalError, InterfaceError):
        raise
    except SoftTimeLimitExceeded:
        failed = "The job ran out of time."
    except inspect.JobError as exc:
        failed = str(exc)
    except Exception as exc:  # noqa: BLE001 - any other error ends the job, with its class
        logger.exception("packaging job %s failed", job_id)
        failed = f"{type(exc).__name__}: {exc}"
    try:
        jobs.job_finish(job, result, failed=failed)
    except jobs.Cancelled:  # cancelled, or a later attempt holds the job: it writes the end
        return "cancelled"
    return "failed" if failed else "succeeded"


@shared_task(acks_late=True)
def sweep() -> dict[str, int]:
    """Run by celery beat every SWEEP_INTERVAL seconds and by each worker as it starts: queue
    again what lost messages and dead workers left behind (packaging jobs and webhook
    deliveries), and remove stale upload spool files. Other apps sweep their own work through
    the `sweeping` signal (governance: webhook deliveries)."""
    swept: dict[str, int] = {**jobs.jobs_sweep(), "spool_files": spool_sweep()}
    for _receiver, counts in signals.sweeping.send(sender=sweep):
        # django-stubs types a receiver's response as str | None; these return counts.
        swept.update(cast("dict[str, int]", counts))
    return swept


@worker_ready.connect
def sweep_on_worker_start(**_kwargs: Any) -> None:
    """A worker that starts (often: restarted after one died) queues again at once the jobs
    whose worker has been silent past JOB_HEARTBEAT_TIMEOUT, instead of waiting for beat."""
    try:
        logger.info("sweep on worker start: %s", sweep())
    except Exception:  # noqa: BLE001 - a failed sweep must not stop the worker; beat retries
        logger.exception("sweep on worker start failed")
    finally:
        if not connection.in_atomic_block:
            connection.close()  # the worker's main process; its pool has connections of its own
