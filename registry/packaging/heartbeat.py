"""The heartbeat of a running job: a thread of the worker process that writes the job's
``heartbeat_at`` every JOB_HEARTBEAT_INTERVAL seconds while the job runs.

It beats from the process, not from the job's progress, so a job blocked for a long time in
one step (a conversion in the model process) still shows a living worker, and a killed
worker's job falls silent at once; the sweeper queues it again after JOB_HEARTBEAT_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError, connection

from registry.models import PackagingJob
from registry.services import jobs

logger = logging.getLogger(__name__)


def _beat(job: PackagingJob, interval: float, stop: threading.Event) -> None:
    try:
        while not stop.wait(interval):
            try:
                if not jobs.job_heartbeat(job):
                    # Cancelled, or queued again and maybe taken over: this attempt's next
                    # write raises Cancelled; beating for it would only mislead.
                    logger.warning(
                        "job %s no longer runs under attempt %s; heartbeat stops",
                        job.pk,
                        job.attempts,
                    )
                    return
            except DatabaseError:  # a database blip: the next beat tries again
                logger.warning("job %s: heartbeat not written", job.pk, exc_info=True)
    finally:
        connection.close()  # this thread's own connection


@contextlib.contextmanager
def heartbeat(job: PackagingJob, interval: float | None = None) -> Iterator[None]:
    """Beat for `job`'s current attempt while the block runs."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat,
        args=(job, interval or settings.JOB_HEARTBEAT_INTERVAL, stop),
        name=f"job-{job.pk}-heartbeat",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)  # a beat waiting on a row lock ends with that transaction
