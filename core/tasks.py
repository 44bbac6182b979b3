"""Sending Celery tasks once the change that asks for them commits.

Services name a task by its registered name ("registry.tasks.run_job") instead of importing
its module: tasks modules import the services they run, so a service importing its task would
be a cycle. Each app imports its own tasks module from its AppConfig.ready(), so the name is
registered in every process that enqueues (web, commands, tests, workers).
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send the task registered as `name` with `args` once the current transaction commits
    (never for a rolled-back change; at once outside a transaction).

    The task is looked up now, inside the transaction: a name nobody registered raises
    celery.exceptions.NotRegistered (a KeyError) and the caller's change rolls back, rather
    than committing work no task will ever pick up. If the broker is down when the change
    has committed, the change stands and the failure is logged (robust): the work is recorded
    in the database (a queued job, a pending delivery) and the sweeper sends it again."""
    task = current_app.tasks[name]
    transaction.on_commit(lambda: task.delay(*args), robust=True)
