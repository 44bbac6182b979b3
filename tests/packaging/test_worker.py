"""Real Celery workers on the real Redis broker: an upload inspected, converted and bundled end
to end; a worker SIGKILLed mid-job, whose job another worker completes exactly once.

Runs when REDIS_URL is set (CI's PostgreSQL + Redis run); each worker is a separate process
this test starts, pointed at the test database and the test's artifact folder, and the test
looks only at the processes below the workers it started."""

from __future__ import annotations

import io
import os
import pickle
import socket
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

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL,
        reason=(
            "needs Redis: set REDIS_URL=redis://host:6379/<db> (real Celery workers use "
            "it as their broker)"
        ),
    ),
]
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def _start_worker(name: str, extra: list[str], env: dict[str, str]) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ARTIFACT_ROOT": settings.STORAGES["artifacts"]["OPTIONS"]["location"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
        **env,
    }
    hostname = f"{name}-{os.getpid()}@%h"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--hostname",
            hostname,
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    expected = hostname.replace("%h", socket.gethostname())
    while time.monotonic() < deadline and not any(
        expected in reply for reply in celery_app.control.ping(timeout=0.5)
    ):
        assert process.poll() is None, process.stdout.read()
    return process


@pytest.fixture
def workers(tmp_path):
    started: list[subprocess.Popen] = []
    celery_app.conf.task_always_eager = False

    def start(name: str, *, beat: bool = False, **env: str) -> subprocess.Popen:
        # Beat inside the worker (as the demo runs it), its schedule in the test's folder.
        extra = ["--beat", "--schedule", str(tmp_path / f"beat-{name}")] if beat else []
        started.append(_start_worker(name, extra, env))
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


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent PID, start time) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


# /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; without it a process's children
# are found by their parent PID.
PROC_CHILDREN = Path(f"/proc/self/task/{os.getpid()}/children").exists()


def _children_of(pid: int) -> list[int]:
    if PROC_CHILDREN:
        found = []
        for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                found += [int(child) for child in tasks.read_text().split()]
            except OSError:
                continue
        return found
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (_stat(int(entry.name)) or ("", 0, 0))[1] == pid
    ]


def _model_processes(worker: subprocess.Popen) -> dict[int, int]:
    """The model processes (the zygote and its job processes) below a worker this test
    started, each with its start time (a PID reused later is another process)."""
    found, todo = {}, [worker.pid]
    while todo:
        for child in _children_of(todo.pop()):
            todo.append(child)
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            stat = _stat(child)
            if stat and b"registry.packaging.child" in cmdline:
                found[child] = stat[2]
    return found


def _running(processes: dict[int, int]) -> list[int]:
    """Those of `processes` still running (not gone, not a zombie awaiting its reaper)."""
    return [
        pid
        for pid, started in processes.items()
        if (stat := _stat(pid)) is not None and stat[2] == started and stat[0] != "Z"
    ]


def _wait(job: PackagingJob, until, seconds: float = 90) -> PackagingJob:
    deadline = time.monotonic() + seconds
    while not until(job) and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    return job


def test_a_real_worker_inspects_an_upload(worker, data_scientist):
    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    artifact = make_artifact(
        data_scientist, version, pickle.dumps({"weights": [1, 2, 3]}), "model.pkl"
    )
    job = _wait(
        PackagingJob.objects.get(artifact=artifact),
        lambda j: j.status not in ("queued", "running"),
        60,
    )
    output = b"" if worker.poll() is None else worker.stdout.read()
    assert job.status == "succeeded", (job.status, job.error, output[-2000:])
    assert job.result["scan"]["verdict"] == "safe" and job.task_id
    artifact.refresh_from_db()
    assert artifact.safety == "safe"


@pytest.mark.postgres
def test_a_sigkilled_worker_s_job_completes_exactly_once_on_another_within_two_minutes(
    workers, data_scientist
):
    """The job's message stays unacknowledged with the killed worker (the visibility timeout
    is the production 4 h); the job recovers through its heartbeat alone: silent for
    JOB_HEARTBEAT_TIMEOUT, the sweeper (beat in the new worker) queues it again and the new
    worker completes it. Short intervals here keep the test fast; the defaults (beat every
    10 s, silent for 60 s, sweep every 20 s) recover a job in about 80 s plus its run."""
    import signal

    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from core.models import AuditEvent
    from registry.models import Artifact
    from registry.services import job_start
    from tests.factories import actor_for

    X, y = make_classification(n_samples=3000, n_features=10, random_state=0)
    forest = RandomForestClassifier(n_estimators=300, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(forest, buffer)
    signature = {"inputs": [{"name": f"f{i}", "type": "double"} for i in range(10)]}
    version = make_version(data_scientist, make_model(data_scientist, "churn"), signature=signature)
    fast = {"JOB_HEARTBEAT_INTERVAL": "1", "JOB_HEARTBEAT_TIMEOUT": "5", "SWEEP_INTERVAL": "2"}
    if os.environ.get("MODELGATE_RECOVERY_DEFAULTS") == "1":
        # Measure recovery with the default timeout and sweep (a beat every second only so
        # the check above sees one before this short conversion ends).
        fast = {"JOB_HEARTBEAT_INTERVAL": "1"}
    first = workers("first", **fast)
    artifact = make_artifact(data_scientist, version, buffer.getvalue(), "forest.joblib")
    inspect = _wait(
        PackagingJob.objects.get(artifact=artifact, kind="inspect"),
        lambda j: j.status == "succeeded",
    )
    assert inspect.status == "succeeded", inspect.error
    job, _ = job_start(actor=actor_for(data_scientist), version=version, kind="convert_onnx")
    job = _wait(job, lambda j: j.step.startswith("converting"), 60)
    assert job.status == "running", (job.status, job.error)
    # The worker beats while the conversion blocks in one long step (progress writes both
    # times alike; a later heartbeat came from the worker's thread).
    job = _wait(job, lambda j: j.heartbeat_at > j.updated_at, 30)
    assert job.heartbeat_at > job.updated_at and job.step.startswith("converting"), job.step
    model_processes = _model_processes(first)
    assert model_processes, "the conversion runs in a model process below the worker"
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait(timeout=10)
    # The kill travels worker → zygote → job process (each dies with its parent); on a busy
    # machine that takes a moment, so wait for it, within a bound.
    deadline = time.monotonic() + 15
    while _running(model_processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(model_processes), "the killed worker's conversion process died with it"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)  # what the dead worker left
    workers("second", beat=True, **fast)
    job = _wait(
        job, lambda j: j.status in ("succeeded", "failed"), 120 - (time.monotonic() - killed_at)
    )
    assert job.status == "succeeded", (job.status, job.error, job.log)
    recovered_in = time.monotonic() - killed_at
    print(f"recovered {recovered_in:.0f} s after the kill")
    assert recovered_in < 120
    assert job.attempts == 2
    [onnx] = Artifact.objects.filter(version=version, format="onnx")
    assert onnx.derived_by_job_id == job.pk and job.result["onnx_artifact"]["id"] == onnx.pk
    events = AuditEvent.objects.filter(target_id=str(job.pk))
    assert list(
        events.filter(action__startswith="job.").order_by("pk").values_list("action", flat=True)
    ) == ["job.started", "job.requeued", "job.succeeded"]
    assert events.get(action="job.requeued").details["attempts"] == 1
    assert "no heartbeat from its worker" in job.log and "attempt 2" in job.log


def test_a_real_worker_inspects_converts_and_bundles_an_upload(
    worker, data_scientist, tmp_path, monkeypatch
):
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
        data_scientist,
        make_model(data_scientist, "churn"),
        signature={
            "inputs": [{"name": c, "type": "double"} for c in columns],
            "outputs": [{"name": "label", "type": "long"}],
        },
        input_example=[dict(zip(columns, row, strict=True)) for row in X[:16].tolist()],
    )
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
    # The worker inspects what it derived, the bundle too (it used to stay "not yet").
    inspection = _wait(stored.jobs.get(kind="inspect"), finished)
    stored.refresh_from_db()
    assert (inspection.status, stored.safety) == ("succeeded", "safe"), inspection.error
    with (
        artifact_storage().open(stored.storage_key, "rb") as handle,
        zipfile.ZipFile(handle) as archive,
    ):
        archive.extractall(tmp_path / "bundle")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = mlflow.pyfunc.load_model(str(tmp_path / "bundle"))
    predictions = model.predict(pd.DataFrame(X[:40], columns=columns))
    assert (np.asarray(predictions) == pipeline.predict(X[:40])).all()
