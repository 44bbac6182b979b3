"""API benchmark: 1,000 models x 10 versions, served by gunicorn as in the README.

    .venv/bin/python benchmarks/api_bench.py --database sqlite
    .venv/bin/python benchmarks/api_bench.py --database postgres   # needs a local PostgreSQL

Seeds through the services (so numbering, grants and audit rows are real), starts gunicorn
with DEBUG off, then measures list, get, search, create and a file upload at concurrency 1
and 8 with keep-alive clients, and prints requests/s and p50/p95/p99 latencies as a Markdown table;
with `--write-readme README.md` also writes it, with date and machine, into the README.
Not collected by pytest; speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import readme_report

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
PORT = 8765
BLOCK = "<!-- api-bench:{db}:{edge} -->"


def configure(database: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "MODELGATE_VAR_DIR": str(BENCH_DIR / database),
            "LOG_LEVEL": "WARNING",
            # The README's switches for plain HTTP on this machine (Production).
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
        }
    )
    env.pop("REDIS_URL", None)
    if database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{BENCH_DIR / database / 'bench.sqlite3'}"
    else:
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/modelgate_bench"
    return env


def reset(database: str, env: dict[str, str]) -> None:
    shutil.rmtree(BENCH_DIR / database, ignore_errors=True)
    (BENCH_DIR / database).mkdir(parents=True)
    if database == "postgres":
        for sql in (
            "DROP DATABASE IF EXISTS modelgate_bench WITH (FORCE)",
            "CREATE DATABASE modelgate_bench",
        ):
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                check=True,
            )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )


SEED = r"""
import json, sys, time
import django
django.setup()
from django.contrib.auth.models import User
from django.db import transaction
from core.actors import Actor
from governance.roles import roles_sync
from core.tokens import token_create
from registry import services

models, versions = int(sys.argv[1]), int(sys.argv[2])
groups = roles_sync(actor=Actor.system("cli"))
user = User.objects.create_user("bench", password="bench-password-1")
user.groups.add(groups["data scientist"])
actor = Actor.system("cli", user=user)
started = time.perf_counter()
for m in range(models):
    with transaction.atomic():
        rm = services.registered_model_create(
            actor=actor, name=f"model-{m:04d}", description="Benchmark model",
            risk_tier=["low", "medium", "high", "critical"][m % 4],
            tags={"team": f"team-{m % 10}", "domain": f"domain-{m % 7}"})
        for v in range(versions):
            services.version_create(
                actor=actor, registered_model=rm, source=f"s3://bench/{m}/{v}",
                params={"depth": v + 2, "lr": 0.1}, metrics={"auc": 0.7 + v * 0.02, "f1": 0.6},
                tags={"run": str(v)})
_, raw = token_create(actor=actor, user=user, name="bench")
# As after any bulk load: give the query planner statistics (autovacuum would, later).
from django.db import connection
connection.cursor().execute("ANALYZE")
print(json.dumps({"token": raw, "seconds": time.perf_counter() - started}))
"""


def seed(env: dict[str, str], models: int, versions: int) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SEED, str(models), str(versions)],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"seeded {models} models x {versions} versions in {result['seconds']:.0f} s", flush=True)
    return result["token"]


def start_server(env: dict[str, str], workers: int, threads: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(
        [
            gunicorn,
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "600",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", "/api/v1/models/")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


class Client:
    def __init__(self, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(
        self,
        method: str,
        path: str,
        body: str | bytes | None,
        expect: int,
        content_type: str = "application/json",
    ) -> float:
        started = time.perf_counter()
        headers = {**self.headers, "Content-Type": content_type}
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != expect:
            raise RuntimeError(f"{method} {path} -> {response.status}")
        return elapsed


def operations(models: int, versions: int) -> dict[str, object]:
    def name() -> str:
        return f"model-{random.randrange(models):04d}"

    return {
        "list models (page of 50)": lambda: ("GET", "/api/v1/models/?page_size=50", None, 200),
        "get model": lambda: ("GET", f"/api/v1/models/{name()}/", None, 200),
        "search models (q)": lambda: (
            "GET",
            "/api/v1/models/?q="
            + quote(
                f"name LIKE 'model-0{random.randrange(10)}%' AND "
                f"(tags.team = 'team-{random.randrange(10)}' OR metrics.auc > 0.85)"
            ),
            None,
            200,
        ),
        "create version": lambda: (
            "POST",
            f"/api/v1/models/{name()}/versions/",
            json.dumps({"source": "s3://bench/new", "metrics": {"auc": 0.9}}),
            201,
        ),
        # A new file on an unsealed version: the seal check before and under the row lock, the
        # row, its inspection job queued (the broker is the embedded filesystem one here).
        "upload file (4 KB)": lambda: (
            "POST",
            f"/api/v1/models/{name()}/versions/{random.randrange(1, versions + 1)}/artifacts/"
            f"?filename=bench-{uuid.uuid4().hex}.bin",
            os.urandom(4096),
            201,
            "application/octet-stream",
        ),
    }


def measure(token: str, op, concurrency: int, requests: int) -> dict[str, float]:
    per_thread = requests // concurrency
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def worker() -> None:
        client = Client(token)
        for _ in range(3):  # warm the connection and the worker
            client.call(*op())
        barrier.wait()
        mine = [client.call(*op()) for _ in range(per_thread)]
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / wall,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
    }


def report(args: argparse.Namespace, info: dict[str, str], rows: list[tuple]) -> str:
    title = "PostgreSQL" if args.database == "postgres" else "SQLite (embedded default)"
    engine = (
        f"PostgreSQL {readme_report.postgresql_version()}"
        if args.database == "postgres"
        else f"SQLite {info['sqlite']}"
    )
    lines = [
        textwrap.fill(
            f"Measured {datetime.date.today().isoformat()} by `.venv/bin/python "
            f"benchmarks/api_bench.py --database {args.database}` on {info['cpu']} "
            f"({info['cores']} cores, {info['ram']} RAM), {info['os']}, Python "
            f"{info['python']}, {engine}, Modelgate {info['modelgate']}; {args.models:,} models "
            f"x {args.versions} versions, gunicorn --workers {args.workers} --threads "
            f"{args.threads}, {args.requests} requests a row; client, server and database "
            f"share the machine (load average {info['load']} at the start).",
            width=95,
            break_on_hyphens=False,
        ),
        "",
        f"| {title} | concurrency | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for label, concurrency, r in rows:
        lines.append(
            f"| {label} | {concurrency} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
            f"{r['p99']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--only",
        default="",
        help="Run only operations whose label contains this text (e.g. 'search').",
    )
    parser.add_argument("--concurrency", default="1,8", help="Comma-separated levels.")
    parser.add_argument(
        "--write-readme",
        type=Path,
        metavar="README",
        help="write the table, with date and machine, into README's api-bench block",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the seeded database of an earlier run (migrating it).",
    )
    args = parser.parse_args()
    start, end = (BLOCK.format(db=args.database, edge=edge) for edge in ("start", "end"))
    if args.write_readme:
        readme_report.block(args.write_readme, start, end)  # before the long run
    info = readme_report.machine()
    env = configure(args.database)
    token_file = BENCH_DIR / args.database / "token"
    if args.reuse and token_file.exists():
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        token = token_file.read_text()
    else:
        reset(args.database, env)
        token = seed(env, args.models, args.versions)
        token_file.write_text(token)
    server = start_server(env, args.workers, args.threads)
    rows = []
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
        for label, op in operations(args.models, args.versions).items():
            if args.only not in label:
                continue
            for concurrency in levels:
                result = measure(token, op, concurrency, args.requests)
                rows.append((label, concurrency, result))
                print(
                    f"{label:<26} c={concurrency}  {result['rps']:7.0f} req/s  p50 "
                    f"{result['p50']:6.1f} ms  p95 {result['p95']:6.1f} ms  p99 "
                    f"{result['p99']:6.1f} ms",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = report(args, info, rows)
    print(text)
    if args.write_readme and not args.only:
        readme_report.write_block(args.write_readme, start, end, text)
    (BENCH_DIR / f"results-{args.database}.json").write_text(
        json.dumps([{"operation": label, "concurrency": c, **r} for label, c, r in rows], indent=2)
    )


if __name__ == "__main__":
    main()
