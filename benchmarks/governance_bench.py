"""Governance benchmark: permission-filtered listing and audit append throughput.

    .venv/bin/python benchmarks/governance_bench.py                      # PostgreSQL (default)
    .venv/bin/python benchmarks/governance_bench.py --database sqlite

1. Listing: 10,000 models; a user holds per-model VIEW grants on 10% of them (half directly,
   half through a group) and pages through the model list (50 per page, following the cursor);
   an administrator pages through the same number of pages. p50/p95 per page for both, in
   process through the full Django/DRF stack (no network), DEBUG off.
2. Audit appends: 8 threads each committing small transactions that record one event; events
   per second and p50/p95 commit latency, then a full `verify_audit_log`.

Prints Markdown tables for the README. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "modelgate_bench_governance"


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


def page_times(user: object, pages: int, rounds: int) -> tuple[list[float], int]:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
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


def listing(models: int, share: float, rounds: int) -> None:
    user, admin = seed(models, share)
    pages = int(models * share) // 50
    page_times(user, 3, 1)  # warm up
    page_times(admin, 3, 1)
    user_ms, user_rows = page_times(user, pages, rounds)
    admin_ms, admin_rows = page_times(admin, pages, rounds)
    print(
        f"\n{models} models; the user holds VIEW on {int(models * share)} "
        f"({share:.0%}, half through a group); {pages} pages of 50, {rounds} rounds\n"
    )
    print("| who | pages | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for who, ms in (("user with per-model grants", user_ms), ("administrator", admin_ms)):
        print(f"| {who} | {len(ms)} | {statistics.median(ms):.1f} | {pct(ms, 95):.1f} |")
    print(
        f"\nratio p50 {statistics.median(user_ms) / statistics.median(admin_ms):.2f}x, "
        f"p95 {pct(user_ms, 95) / pct(admin_ms, 95):.2f}x "
        f"(rows seen: user {user_rows}, admin {admin_rows})"
    )


def audit_appends(writers: int, per_writer: int) -> None:
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
    total = writers * per_writer
    print(f"\nAudit appends: {writers} concurrent writers x {per_writer} transactions\n")
    print("| events | seconds | events/s | p50 ms | p95 ms |")
    print("|---|---|---|---|---|")
    print(
        f"| {total} | {elapsed:.2f} | {total / elapsed:.0f} | "
        f"{statistics.median(latencies):.1f} | {pct(latencies, 95):.1f} |"
    )
    started = time.perf_counter()
    verdict = audit.verify()
    print(f"\nverify_audit_log: {verdict} in {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=250, help="transactions per writer")
    args = parser.parse_args()
    configure(args.database)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    print(f"# Governance benchmark on {args.database}")
    listing(args.models, args.share, args.rounds)
    audit_appends(args.writers, args.appends)


if __name__ == "__main__":
    main()
