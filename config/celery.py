"""The Celery application; broker from REDIS_URL, or a local filesystem transport.

Each app imports its own tasks module from its AppConfig.ready(), so every process that has
set Django up (web, commands, tests, workers) knows the tasks by name; services send them
with core.tasks.enqueue_on_commit("<module>.<function>", ...) after their change commits."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modelgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
