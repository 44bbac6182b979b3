"""A real Celery worker on the real Redis broker inspects an upload end to end.

Runs when REDIS_URL is set (CI's PostgreSQL + Redis run); the worker is a separate process
pointed at the test database and the test's artifact folder."""

from __future__ import annotations

import io
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


def _start_worker(name: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "ARTIFACT_ROOT": settings.STORAGES["artifacts"]["OPTIONS"]["location"],
           "CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_VISIBILITY_TIMEOUT": "5"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--hostname", f"{name}-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not celery_app.control.ping(timeout=0.5) and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
    return process


@pytest.fixture
def workers():
    started: list[subprocess.Popen] = []
    celery_app.conf.task_always_eager = False

    def start(name: str) -> subprocess.Popen:
        started.append(_start_worker(name))
        return started[-1]

    try:
        yield start
    finally:
        celery_app.conf.task_always_eager = True
        for process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


@pytest.fixture
def worker(workers):
    return workers("test")


def _parent(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid")))


def _children() -> list[int]:
    """Model processes (zygotes and their jobs) on this machine, but for this test process's
    own zygote and its jobs (tasks run eagerly in other tests start one here)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"registry.packaging.child" in (
                    entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    ours = {pid for pid in found if _parent(pid) == os.getpid()}
    return [pid for pid in found if pid not in ours and _parent(pid) not in ours]


def _wait(job: PackagingJob, until, seconds: float = 90) -> PackagingJob:
    deadline = time.monotonic() + seconds
    while not until(job) and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    return job


def test_a_real_worker_inspects_an_upload(worker, data_scientist):
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    artifact = make_artifact(data_scientist, version, pickle.dumps({"weights": [1, 2, 3]}),
                             "model.pkl")
    job = _wait(PackagingJob.objects.get(artifact=artifact),
                lambda j: j.status not in ("queued", "running"), 60)
    output = b"" if worker.poll() is None else worker.stdout.read()
    assert job.status == "succeeded", (job.status, job.error, output[-2000:])
    assert job.result["scan"]["verdict"] == "safe" and job.task_id
    artifact.refresh_from_db()
    assert artifact.safety == "safe"


def test_a_killed_worker_s_conversion_completes_exactly_once_on_a_new_worker(workers,
                                                                           data_scientist):
    import signal

    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from registry.models import Artifact
    from registry.services import job_start
    from tests.factories import actor_for

    X, y = make_classification(n_samples=3000, n_features=10, random_state=0)
    forest = RandomForestClassifier(n_estimators=300, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(forest, buffer)
    signature = {"inputs": [{"name": f"f{i}", "type": "double"} for i in range(10)]}
    version = make_version(data_scientist, make_model(data_scientist, "churn"),
                           signature=signature)
    first = workers("first")
    artifact = make_artifact(data_scientist, version, buffer.getvalue(), "forest.joblib")
    inspect = _wait(PackagingJob.objects.get(artifact=artifact, kind="inspect"),
                    lambda j: j.status == "succeeded")
    assert inspect.status == "succeeded", inspect.error
    job, _ = job_start(actor=actor_for(data_scientist), version=version, kind="convert_onnx")
    job = _wait(job, lambda j: j.step.startswith("converting"), 60)
    assert job.status == "running", (job.status, job.error)
    assert _children(), "the conversion runs in a model process"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    # The kill travels worker → zygote → job process (each dies with its parent); on a busy
    # machine that takes a moment, so wait for it, within a bound.
    deadline = time.monotonic() + 15
    while _children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _children(), "the killed worker's conversion process died with it"
    time.sleep(5.5)  # past the visibility timeout: the unacknowledged message comes back
    workers("second")
    job = _wait(job, lambda j: j.status in ("succeeded", "failed"), 180)
    assert job.status == "succeeded", (job.status, job.error, job.log)
    assert job.attempts == 2
    assert Artifact.objects.filter(version=version, format="onnx").count() == 1
    from governance.models import AuditEvent
    assert AuditEvent.objects.filter(action="job.succeeded", target_id=str(job.pk)).count() == 1


def test_a_real_worker_inspects_converts_and_bundles_an_upload(worker, data_scientist, tmp_path,
                                                               monkeypatch):
    import zipfile

    import joblib
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from registry.models import Artifact
    from registry.services import job_start
    from registry.services.artifacts import artifact_storage
    from tests.factories import actor_for

    X, y = make_classification(n_samples=300, n_features=5, random_state=3)
    columns = [f"f{i}" for i in range(5)]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    version = make_version(
        data_scientist, make_model(data_scientist, "churn"),
        signature={"inputs": [{"name": c, "type": "double"} for c in columns],
                   "outputs": [{"name": "label", "type": "long"}]},
        input_example=[dict(zip(columns, row, strict=True)) for row in X[:16].tolist()])
    artifact = make_artifact(data_scientist, version, buffer.getvalue(), "pipe.joblib")
    finished = lambda j: j.status not in ("queued", "running")  # noqa: E731
    inspect = _wait(PackagingJob.objects.get(artifact=artifact, kind="inspect"), finished)
    assert inspect.status == "succeeded" and inspect.result["scan"]["verdict"] == "safe"
    actor = actor_for(data_scientist)
    convert, _ = job_start(actor=actor, version=version, kind="convert_onnx")
    convert = _wait(convert, finished)
    assert convert.status == "succeeded", convert.error
    assert convert.result["label_agreement"] == 1.0
    bundle, _ = job_start(actor=actor, version=version, kind="bundle")
    bundle = _wait(bundle, finished)
    assert bundle.status == "succeeded", bundle.error
    assert "onnx" in bundle.result["flavors"] and bundle.attempts == 1
    stored = Artifact.objects.get(pk=bundle.result["bundle_artifact"]["id"])
    with artifact_storage().open(stored.storage_key, "rb") as handle, \
            zipfile.ZipFile(handle) as archive:
        archive.extractall(tmp_path / "bundle")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = mlflow.pyfunc.load_model(str(tmp_path / "bundle"))
    predictions = model.predict(pd.DataFrame(X[:40], columns=columns))
    assert (np.asarray(predictions) == pipeline.predict(X[:40])).all()
