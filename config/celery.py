"""The Celery application; broker from REDIS_URL, or a local filesystem transport."""

import os
from typing import Any

from celery import Celery
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modelgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue_on_commit(task: Any, *args: Any) -> None:
    """Send `task` with `args` once the current transaction commits (never for a rolled-back
    change). If the broker is down the committed change stands and the failure is logged:
    the work is recorded in the database (a pending delivery) and can be sent again."""
    transaction.on_commit(lambda: task.delay(*args), robust=True)
