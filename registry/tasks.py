"""Celery tasks of the registry. They receive ids and load what they need."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from registry.models import PackagingJob
from registry.packaging import bundle, convert, inspect
from registry.services import jobs

logger = logging.getLogger(__name__)
K = PackagingJob.Kind
HANDLERS = {K.INSPECT: inspect.run, K.CONVERT_ONNX: convert.run,
            K.INFER_SIGNATURE: convert.infer_signature, K.COMPARE_FORMATS: convert.compare_formats,
            K.BUNDLE: bundle.run, K.TORCHSCRIPT: convert.torchscript}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=5,
             retry_backoff_max=300, max_retries=5, soft_time_limit=3000, time_limit=3300)
def run_job(self: Any, job_id: int) -> str:
    """Run one packaging job. A lost worker's message is redelivered (acks late, reject on
    worker loss) and the job resumes from the start; database outages retry with backoff;
    anything else ends the job as failed with its message."""
    job = jobs.job_claim(job_id, self.request.id or "")
    if job is None:
        return "nothing to do"
    try:
        result = HANDLERS[job.kind](job)
    except jobs.Cancelled:
        return "cancelled"
    except (OperationalError, InterfaceError):
        raise
    except SoftTimeLimitExceeded:
        jobs.job_finish(job, {}, failed="The job ran out of time.")
        return "failed"
    except inspect.JobError as exc:
        jobs.job_finish(job, {}, failed=str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any other error ends the job, with its class
        logger.exception("packaging job %s failed", job_id)
        jobs.job_finish(job, {}, failed=f"{type(exc).__name__}: {exc}")
        return "failed"
    try:
        jobs.job_finish(job, result)
    except jobs.Cancelled:
        return "cancelled"
    return "succeeded"


@shared_task(acks_late=True)
def sweep() -> dict[str, int]:
    """Run by celery beat every SWEEP_INTERVAL seconds: queue again what lost messages left
    behind (packaging jobs and webhook deliveries)."""
    from governance.webhooks import deliveries_sweep

    return {**jobs.jobs_sweep(), "deliveries": deliveries_sweep()}
