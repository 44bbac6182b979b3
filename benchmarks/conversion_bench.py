"""Conversion benchmark: the convert-to-ONNX job on a real worker against doing the same work
directly in one process.

    .venv/bin/python benchmarks/conversion_bench.py                      # PostgreSQL + Redis
    .venv/bin/python benchmarks/conversion_bench.py --database sqlite    # embedded default

A random forest (200 trees, 20 features, trained on 5,000 rows of `make_classification`) is
registered with a 64-row input example and uploaded as joblib. *Direct*: in this process, load
the file, `skl2onnx.to_onnx`, `onnx.checker`, run onnxruntime and scikit-learn on the rows and
compare — the work the job does, without a queue, a database or a child process. *Job*: one
Celery worker (solo pool) on Redis (or kombu's filesystem queue with `--database sqlite`) runs
`convert_onnx` with `force`; wall time from `job_start` to the job reading `succeeded` in the
database (polled every 20 ms). Best and median of five each. Target: job ≤ 1.2 × direct +
0.5 s. Prints a Markdown table for the README. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from governance_bench import configure  # noqa: E402

REDIS = "redis://127.0.0.1:6379/14"
RUNS = 5


def direct(data: bytes, rows) -> float:
    import joblib
    import numpy as np
    import onnx
    import onnxruntime
    from skl2onnx import to_onnx

    started = time.perf_counter()
    model = joblib.load(io.BytesIO(data))
    onx = to_onnx(model, rows[:1], options={id(model): {"zipmap": False}})
    onnx.checker.check_model(onx)
    session = onnxruntime.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: rows})
    assert (labels == model.predict(rows)).all()
    assert np.max(np.abs(probabilities - model.predict_proba(rows))) < 1e-3
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()
    configure(args.database)
    if args.database == "postgres":
        os.environ["REDIS_URL"] = REDIS
        subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import joblib
    import numpy as np
    from django.contrib.auth.models import User
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from core.actors import Actor
    from registry.models import PackagingJob
    from registry.services import job_start, registered_model_create, version_create
    from registry.services.artifacts import artifact_upload, read_chunks

    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    forest = RandomForestClassifier(n_estimators=200, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(forest, buffer)
    data = buffer.getvalue()
    rows = X[:64].astype(np.float32)

    direct(data, rows)  # warm the imports and caches once
    direct_times = [direct(data, rows) for _ in range(RUNS)]

    admin = User.objects.create_superuser("bench-admin", "a@example.com", "x")
    actor = Actor(user=admin, channel="api")
    columns = [f"f{i}" for i in range(20)]
    model = registered_model_create(actor=actor, name="bench-forest")
    version, _ = version_create(
        actor=actor,
        registered_model=model,
        signature={"inputs": [{"name": c, "type": "double"} for c in columns]},
        input_example=[dict(zip(columns, r, strict=True)) for r in X[:64].tolist()],
    )
    worker = subprocess.Popen(
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
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        artifact_upload(
            actor=actor,
            version=version,
            filename="forest.joblib",
            chunks=read_chunks(io.BytesIO(data)),
        )

        def wait(job: PackagingJob) -> PackagingJob:
            while True:
                job.refresh_from_db()
                if job.status not in ("queued", "running"):
                    return job
                time.sleep(0.02)

        wait(PackagingJob.objects.get(kind="inspect"))  # the worker is up and warm
        job_times = []
        for i in range(RUNS + 1):
            started = time.perf_counter()
            job, _ = job_start(actor=actor, version=version, kind="convert_onnx", force=True)
            job = wait(job)
            elapsed = time.perf_counter() - started
            assert job.status == "succeeded", job.error
            if i:  # the first run warms the worker's imports
                job_times.append(elapsed)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    best_direct, best_job = min(direct_times), min(job_times)
    median_direct, median_job = statistics.median(direct_times), statistics.median(job_times)
    target = 1.2 * median_direct + 0.5
    transport = "Redis" if args.database == "postgres" else "filesystem queue"
    print(f"\n{len(data) / 1e6:.1f} MB joblib forest, 64 rows, {args.database} + {transport}\n")
    print("| | best | median |")
    print("|---|---|---|")
    print(f"| direct, one process | {best_direct:.2f} s | {median_direct:.2f} s |")
    print(f"| `convert_onnx` job on a worker | {best_job:.2f} s | {median_job:.2f} s |")
    print(
        f"\nTarget (1.2 × direct + 0.5 s on medians): {target:.2f} s — "
        f"{'met' if median_job <= target else 'NOT met'}; "
        f"overhead {median_job - median_direct:+.2f} s ({median_job / median_direct:.2f}×)."
    )


if __name__ == "__main__":
    main()
