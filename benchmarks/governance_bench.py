"""Governance benchmark: permission-filtered listing and audit append throughput.

    .venv/bin/python benchmarks/governance_bench.py                      # PostgreSQL (default)
    .venv/bin/python benchmarks/governance_bench.py --database sqlite

1. Listing: 10,000 models; a user holds per-model VIEW grants on 10% of them (half directly,
   half through a group) and pages through the model list (50 per page, following the cursor);
   an administrator pages through the same number of pages. p50/p95 per page for both, in
   process through the full Django/DRF stack (no network), DEBUG off.
2. Audit appends: 8 threads each committing small transactions that record one event; events
   per second and p50/p95 commit latency, then a full `verify_audit_log`.

Prints its tables; with `--write-readme README.md` also writes them, with date and machine,
into the README's block for the database. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import readme_report

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "modelgate_bench_governance"
BLOCK = "<!-- governance-bench:{db}:{edge} -->"


def configure(database: str) -> None:
    var = ROOT / "var" / "bench" / f"governance-{database}"
    var.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "testserver,127.0.0.1",
            "MODELGATE_VAR_DIR": str(var),
            "LOG_LEVEL": "WARNING",
            # In process, plain HTTP: the README's switches for a trial without TLS.
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    os.environ.pop("REDIS_URL", None)
    if database == "postgres":
        for sql in (
            f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)",
            f"CREATE DATABASE {DB_NAME}",
        ):
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                check=True,
            )
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    else:
        db = var / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm", ".writelock"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{db}"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def seed(models: int, share: float) -> tuple[object, object]:
    from django.contrib.auth.models import Group, Permission, User
    from django.db import connection
    from django.utils import timezone

    from governance.models import RegisteredModelGroupPermission, RegisteredModelUserPermission
    from registry.models import RegisteredModel

    now = timezone.now()
    admin = User.objects.create_superuser("bench-admin", "a@example.com", "x")
    user = User.objects.create_user("bench-user", "u@example.com", "x")
    team = Group.objects.create(name="bench-team")
    user.groups.add(team)
    tiers = ["low", "medium", "high", "critical"]
    RegisteredModel.objects.bulk_create(
        [
            RegisteredModel(
                name=f"model-{i:05d}",
                description="Benchmark model",
                risk_tier=tiers[i % 4],
                owner=admin,
                created_by=admin,
                updated_by=admin,
                created_at=now,
                updated_at=now,
            )
            for i in range(models)
        ],
        batch_size=2000,
    )
    view = Permission.objects.get(codename="view_registeredmodel")
    step = round(1 / share)
    granted = list(RegisteredModel.objects.order_by("name").values_list("pk", flat=True))[::step]
    half = len(granted) // 2
    RegisteredModelUserPermission.objects.bulk_create(
        [
            RegisteredModelUserPermission(user=user, permission=view, content_object_id=pk)
            for pk in granted[:half]
        ],
        batch_size=2000,
    )
    RegisteredModelGroupPermission.objects.bulk_create(
        [
            RegisteredModelGroupPermission(group=team, permission=view, content_object_id=pk)
            for pk in granted[half:]
        ],
        batch_size=2000,
    )
    # Other users' grants, so the grant tables are not trivially small.
    others = [User(username=f"other-{i}") for i in range(50)]
    User.objects.bulk_create(others)
    others = list(User.objects.filter(username__startswith="other-"))
    all_pks = list(RegisteredModel.objects.values_list("pk", flat=True))
    RegisteredModelUserPermission.objects.bulk_create(
        [
            RegisteredModelUserPermission(
                user=others[i % 50],
                permission=view,
                content_object_id=all_pks[(i * 7) % len(all_pks)],
            )
            for i in range(models)
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return user, admin


def token_client(user: Any) -> Any:
    """A client authenticated as automation is, with a token: each request loads its own
    user (role permissions in the same query), so nothing one request learnt about the
    user's grants carries into the next."""
    from rest_framework.test import APIClient

    from core.actors import Actor
    from core.tokens import token_create

    _, raw = token_create(actor=Actor.system("cli", user=user), user=user, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def page_times(user: object, pages: int, rounds: int) -> tuple[list[float], int]:
    client = token_client(user)
    times, seen = [], 0
    for _ in range(rounds):
        url, params = "/api/v1/models/", {"page_size": 50}
        for _ in range(pages):
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
            body = response.json()
            seen += len(body["results"])
            if not body["next"]:
                break
            url, params = body["next"], None
    return times, seen


def listing(models: int, share: float, rounds: int) -> dict[str, Any]:
    user, admin = seed(models, share)
    pages = int(models * share) // 50
    page_times(user, 3, 1)  # warm up
    page_times(admin, 3, 1)
    user_ms, user_rows = page_times(user, pages, rounds)
    admin_ms, admin_rows = page_times(admin, pages, rounds)
    return {
        "models": models,
        "granted": int(models * share),
        "share": share,
        "pages": pages,
        "rounds": rounds,
        "user": user_ms,
        "admin": admin_ms,
        "rows": (user_rows, admin_rows),
        "user_obj": user,
        "admin_obj": admin,
    }


def _pg_ticks() -> int:
    """CPU ticks of this connection's PostgreSQL backend so far (0 on SQLite)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def reads(user: object, admin: object, rounds: int, per_round: int) -> dict[str, Any]:
    """CPU per call (this process plus its PostgreSQL backend) of the reads a client makes
    most, by the user with per-model grants and by the administrator, on the same granted
    models, alternating round by round."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from core.permissions import Perm, models_with
    from registry.models import ModelVersion

    names = list(models_with(user, Perm.VIEW).order_by("name").values_list("name", flat=True))
    owner = User.objects.get(username="bench-admin")
    now = timezone.now()
    ModelVersion.objects.bulk_create(
        [
            ModelVersion(
                registered_model=m, version=v, created_at=now, updated_at=now, created_by=owner
            )
            for m in models_with(user, Perm.VIEW).order_by("name")
            for v in (1, 2, 3)
        ],
        batch_size=2000,
    )
    calls = {
        "MLflow get model": lambda i: (
            "/api/2.0/mlflow/registered-models/get",
            {"name": names[i % len(names)]},
        ),
        "MLflow get version": lambda i: (
            "/api/2.0/mlflow/model-versions/get",
            {"name": names[i % len(names)], "version": str(1 + i % 3)},
        ),
        "v1 model": lambda i: (f"/api/v1/models/{names[i % len(names)]}/", None),
        "v1 versions of a model": lambda i: (
            f"/api/v1/models/{names[i % len(names)]}/versions/",
            None,
        ),
    }
    clients = {"user": token_client(user), "admin": token_client(admin)}
    cpu: dict[str, dict[str, list[float]]] = {c: {"user": [], "admin": []} for c in calls}
    for call, make in calls.items():
        for label, client in clients.items():  # warm up
            for i in range(20):
                path, params = make(i)
                assert client.get(path, params).status_code == 200, (call, label)
        for r in range(rounds):
            for label, client in clients.items():
                pg, started = _pg_ticks(), time.process_time()
                for i in range(per_round):
                    path, params = make(r * per_round + i)
                    response = client.get(path, params)
                    assert response.status_code == 200, (call, label, response.content[:200])
                own = time.process_time() - started
                backend = (_pg_ticks() - pg) / os.sysconf("SC_CLK_TCK")
                cpu[call][label].append((own + backend) * 1000 / per_round)
    return {"cpu": cpu, "rounds": rounds, "per_round": per_round, "models": len(names)}


def audit_appends(writers: int, per_writer: int) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from core import audit
    from core.actors import Actor

    actor = Actor(user=User.objects.get(username="bench-admin"), channel="cli")
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers)

    def write(i: int) -> None:
        mine = []
        barrier.wait()
        for n in range(per_writer):
            started = time.perf_counter()
            with transaction.atomic():
                audit.record(
                    actor=actor, action="bench.append", target=None, details={"writer": i, "n": n}
                )
            mine.append((time.perf_counter() - started) * 1000)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    verdict = audit.verify()
    return {
        "writers": writers,
        "per_writer": per_writer,
        "events": writers * per_writer,
        "seconds": elapsed,
        "latencies": latencies,
        "verdict": "intact" if verdict.ok else str(verdict),
        "verify_seconds": time.perf_counter() - started,
        "verified": verdict.count,
    }


def read_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"| call, CPU ms per call (median of {result['rounds']} rounds of "
        f"{result['per_round']}, over {result['models']:,} granted models) | user with "
        "per-model grants | administrator | ratio |",
        "|---|---|---|---|",
    ]
    for call, by in result["cpu"].items():
        u, a = statistics.median(by["user"]), statistics.median(by["admin"])
        lines.append(f"| {call} | {u:.2f} | {a:.2f} | {u / a:.2f}× |")
    return lines


def report(
    database: str,
    info: dict[str, str],
    lists: dict[str, Any],
    reads_result: dict[str, Any],
    appends: dict[str, Any],
) -> str:
    engine = (
        f"PostgreSQL {readme_report.postgresql_version()}"
        if database == "postgres"
        else f"SQLite {info['sqlite']}"
    )
    user, admin = lists["user"], lists["admin"]
    lat = appends["latencies"]
    lines = [
        f"**{'PostgreSQL' if database == 'postgres' else 'SQLite'}**",
        "",
        textwrap.fill(
            f"Measured {datetime.date.today().isoformat()} by `.venv/bin/python "
            f"benchmarks/governance_bench.py --database {database}` on {info['cpu']} "
            f"({info['cores']} cores, {info['ram']} RAM), {info['os']}, Python "
            f"{info['python']}, {engine}, Modelgate {info['modelgate']}; in process through "
            f"the whole Django/DRF stack, DEBUG off (load average {info['load']} at the start).",
            width=95,
            break_on_hyphens=False,
        ),
        "",
        textwrap.fill(
            f"{lists['models']:,} models; the user holds VIEW on {lists['granted']:,} "
            f"({lists['share']:.0%}, half through a group); {lists['pages']} pages of 50 "
            f"following the cursor, {lists['rounds']} rounds.",
            width=95,
        ),
        "",
        "| model list, page of 50 | pages | p50 ms | p95 ms |",
        "|---|---|---|---|",
        f"| user with per-model grants | {len(user)} | {statistics.median(user):.1f} | "
        f"{pct(user, 95):.1f} |",
        f"| administrator | {len(admin)} | {statistics.median(admin):.1f} | {pct(admin, 95):.1f} |",
        f"| ratio | | {statistics.median(user) / statistics.median(admin):.2f}× | "
        f"{pct(user, 95) / pct(admin, 95):.2f}× |",
        "",
        *read_lines(reads_result),
        "",
        "| audit appends, "
        f"{appends['writers']} concurrent writers × {appends['per_writer']} transactions "
        "| events/s | p50 ms | p95 ms |",
        "|---|---|---|---|",
        f"| {appends['events']:,} events in {appends['seconds']:.2f} s | "
        f"{appends['events'] / appends['seconds']:.0f} | {statistics.median(lat):.1f} | "
        f"{pct(lat, 95):.1f} |",
        "",
        f"`verify_audit_log` over all {appends['verified']:,} events: {appends['verdict']} in "
        f"{appends['verify_seconds']:.2f} s.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="calls per round and user")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=250, help="transactions per writer")
    parser.add_argument(
        "--write-readme",
        type=Path,
        metavar="README",
        help="write the table into README's governance-bench block for this database",
    )
    args = parser.parse_args()
    start, end = (BLOCK.format(db=args.database, edge=edge) for edge in ("start", "end"))
    if args.write_readme:
        readme_report.block(args.write_readme, start, end)  # before the long run
    info = readme_report.machine()
    configure(args.database)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    lists = listing(args.models, args.share, args.rounds)
    reads_result = reads(lists["user_obj"], lists["admin_obj"], args.rounds, args.calls)
    appends = audit_appends(args.writers, args.appends)
    text = report(args.database, info, lists, reads_result, appends)
    print(text)
    if args.write_readme:
        readme_report.write_block(args.write_readme, start, end, text)


if __name__ == "__main__":
    main()
