"""Every API route answers in a number of queries that does not grow with the data (issue 16,
item 4): each API row of the permission matrix (reads and writes, /api/v1/ and the
MLflow-compatible API) is called as an administrator and as a user with per-model grants,
each call in a transaction rolled back after it; then the registry grows (more models,
versions, metrics, tags, aliases, grants, lineage records, audit events) and every route must
cost exactly as many queries as before. Writes count whichever way they end: applied (most, as
the administrator) or refused (the grantee's, and the few the world's state refuses)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core import permissions
from core.actors import Actor
from core.permissions import Perm
from registry import services
from registry.models import RegisteredModel
from tests.factories import SIGNATURE, superuser
from tests.test_permission_matrix import MATRIX, World, _build, _send

pytestmark = pytest.mark.django_db

ROWS = [r for r in MATRIX if r.route.startswith("api/") and not r.page]
ROW_IDS = [
    f"{r.method} {r.route}" + (f" ({r.extra['variant']})" if "variant" in r.extra else "")
    for r in ROWS
]
# Who calls: every query a per-model user adds (the grant filters) is counted too.
CALLERS = ("administrator", "viewer")


def _queries(world: World) -> dict[tuple[str, str], tuple[int, int]]:
    counts = {}
    for row, row_id in zip(ROWS, ROW_IDS, strict=True):
        for who in CALLERS:
            user = world.cast[who]
            permissions.invalidate(user)
            with transaction.atomic(), CaptureQueriesContext(connection) as captured:
                response = _send(row, world, user, "granted")
                if response.streaming:
                    b"".join(response.streaming_content)
                transaction.set_rollback(True)
            counts[(row_id, who)] = (response.status_code, len(captured))
    return counts


def _grow(world: World) -> None:
    """Five times as much of everything a route could read per row."""
    root = superuser()
    act = Actor(user=root, channel="cli")
    granted = RegisteredModel.objects.get(name="granted-model")
    for i in range(4):
        more, _ = services.version_create(
            actor=act,
            registered_model=granted,
            signature=SIGNATURE,
            metrics={"auc": 0.9, f"m{i}": float(i)},
            tags={"team": "x", f"t{i}": "y"},
        )
        services.alias_set(actor=act, registered_model=granted, name=f"alias-{i}", version=more)
        other = services.registered_model_create(actor=act, name=f"more-{i}", tags={"k": "v"})
        version, _ = services.version_create(
            actor=act, registered_model=other, metrics={"auc": 0.7}, tags={"team": "x"}
        )
        services.alias_set(actor=act, registered_model=other, name="champion", version=version)
        permissions.grant(Perm.VIEW, other, user=world.cast["viewer"], granted_by=root)
        source = services.feature_source_create(actor=act, name=f"src-{i}", kind="table")
        feature = services.logical_feature_create(actor=act, source=source, name=f"f-{i}")
        services.dataset_create(actor=act, name=f"ds-{i}", features=[feature])


def test_every_route_costs_the_same_queries_with_five_times_the_data(roles: Any) -> None:
    world = _build(roles)
    _queries(world)  # a process's first calls fill its caches (content types and the like)
    before = _queries(world)
    _grow(world)
    after = _queries(world)
    changed = [
        f"{route} as {who}: {before[(route, who)][1]} -> {after[(route, who)][1]} queries"
        for route, who in before
        if before[(route, who)][1] != after[(route, who)][1]
    ]
    refused = [key for key, (status, _) in after.items() if status >= 400]
    assert not changed, "\n".join(changed)
    assert len(refused) < len(after) / 2, refused  # the routes answered, not only refused
