"""Dashboard benchmark: the models page and a model page with 1,000 models × 10 versions.

    .venv/bin/python benchmarks/dashboard_bench.py                     # embedded default
    .venv/bin/python benchmarks/dashboard_bench.py --database postgres

Seeds 1,000 models (two tags each) with 10 versions each (three metrics, params, one in
production, one in staging, an alias) with bulk inserts (on PostgreSQL followed by `ANALYZE`,
as autovacuum would after such a load), then renders pages through the whole Django stack in
this process (test client, DEBUG off, no network) as a reviewer holding the reviewer role:
the models page (first page, a middle page, a name filter), a model page, a version page and
the home page. Best, p50 and p95 of 50 renders each, after a warm-up. Target: models page and
model page under 150 ms on the embedded default. Prints a Markdown table. Not collected by
pytest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from governance_bench import configure, pct  # noqa: E402

MODELS, VERSIONS, RUNS = 1000, 10, 50


def seed() -> object:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from core.actors import Actor
    from governance.roles import roles_sync
    from registry.models import (
        Alias,
        ModelVersion,
        ModelVersionMetric,
        RegisteredModel,
        RegisteredModelTag,
    )

    groups = roles_sync(actor=Actor.system("cli"))
    owner = User.objects.create_user("bench-owner", "o@example.com", "x")
    reviewer = User.objects.create_user("bench-reviewer", "r@example.com", "x")
    reviewer.groups.add(groups["reviewer"])
    now = timezone.now()
    RegisteredModel.objects.bulk_create(
        [
            RegisteredModel(
                name=f"model-{i:04d}",
                description=f"Benchmark model {i}",
                risk_tier=("low", "medium", "high", "critical")[i % 4],
                owner=owner,
                created_by=owner,
                updated_by=owner,
                last_version_number=VERSIONS,
                created_at=now,
                updated_at=now,
            )
            for i in range(MODELS)
        ],
        batch_size=500,
    )
    models = list(RegisteredModel.objects.order_by("pk"))
    RegisteredModelTag.objects.bulk_create(
        [
            RegisteredModelTag(registered_model=rm, key=k, value=v)
            for rm in models
            for k, v in (("team", f"team-{rm.pk % 7}"), ("domain", "credit"))
        ],
        batch_size=2000,
    )
    stage = {VERSIONS: "production", VERSIONS - 1: "staging"}
    ModelVersion.objects.bulk_create(
        [
            ModelVersion(
                registered_model=rm,
                version=n,
                stage=stage.get(n, "archived" if n < 4 else "none"),
                params={"depth": n, "rate": 0.1 / n},
                created_by=owner,
                created_at=now,
                updated_at=now,
            )
            for rm in models
            for n in range(1, VERSIONS + 1)
        ],
        batch_size=2000,
    )
    versions = list(ModelVersion.objects.only("pk", "version", "registered_model_id"))
    ModelVersionMetric.objects.bulk_create(
        [
            ModelVersionMetric(
                version=v, name=name, value=value + v.version / 100, dataset="holdout", split="test"
            )
            for v in versions
            for name, value in (("auc", 0.7), ("accuracy", 0.6), ("latency_ms", 9.0))
        ],
        batch_size=5000,
    )
    newest = {v.registered_model_id: v for v in versions if v.version == VERSIONS}
    Alias.objects.bulk_create(
        [
            Alias(
                registered_model_id=pk, name="champion", version=v, created_at=now, updated_at=now
            )
            for pk, v in newest.items()
        ],
        batch_size=2000,
    )
    return reviewer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    configure(args.database)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    reviewer = seed()
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum does after a bulk load
            cursor.execute("ANALYZE")
    print(
        f"seeded {MODELS:,} models × {VERSIONS} versions in "
        f"{time.perf_counter() - started:.1f} s ({args.database})"
    )
    client = Client()
    client.force_login(reviewer)
    pages = [
        ("models page, first page", "/models/"),
        ("models page, page 20", "/models/?page=20"),
        ("models page, name filter", "/models/?name=model-05"),
        ("model page (10 versions)", "/models/model-0500/"),
        ("version page", "/models/model-0500/versions/10/"),
        ("compare two versions", "/models/model-0500/compare/?v=9&v=10"),
        ("home", "/"),
    ]
    print("\n| page | best | p50 | p95 |")
    print("|---|---|---|---|")
    for label, url in pages:
        for _ in range(3):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        print(
            f"| {label} | {min(timings):.1f} ms | {statistics.median(timings):.1f} ms | "
            f"{pct(timings, 95):.1f} ms |"
        )


if __name__ == "__main__":
    main()
