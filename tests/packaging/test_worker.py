"""A real Celery worker on the real Redis broker inspects an upload end to end.

Runs when REDIS_URL is set (CI's PostgreSQL + Redis run); the worker is a separate process
pointed at the test database and the test's artifact folder."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from registry.models import PackagingJob
from tests.factories import make_artifact, make_model, make_version

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")]
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.fixture
def worker():
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "ARTIFACT_ROOT": settings.STORAGES["artifacts"]["OPTIONS"]["location"],
           "CELERY_TASK_ALWAYS_EAGER": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--hostname", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    celery_app.conf.task_always_eager = False
    deadline = time.monotonic() + 60
    while not celery_app.control.ping(timeout=0.5) and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
    try:
        yield process
    finally:
        celery_app.conf.task_always_eager = True
        process.terminate()
        process.wait(timeout=30)


def test_a_real_worker_inspects_an_upload(worker, data_scientist):
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    artifact = make_artifact(data_scientist, version, pickle.dumps({"weights": [1, 2, 3]}),
                             "model.pkl")
    deadline = time.monotonic() + 60
    job = PackagingJob.objects.get(artifact=artifact)
    while job.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job.refresh_from_db()
    output = b"" if worker.poll() is None else worker.stdout.read()
    assert job.status == "succeeded", (job.status, job.error, output[-2000:])
    assert job.result["scan"]["verdict"] == "safe" and job.task_id
    artifact.refresh_from_db()
    assert artifact.safety == "safe"
