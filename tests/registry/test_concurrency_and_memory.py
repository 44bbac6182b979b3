"""Real concurrency and real streaming, through a live HTTP server.

These run on the embedded SQLite default (a file database, so every server thread has its
own connection and its own lock waits) and on PostgreSQL in CI's second run.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import tracemalloc
from urllib.parse import urlsplit

import pytest

from core.actors import Actor
from core.tokens import token_create
from registry.models import Artifact, ModelVersion
from registry.services.artifacts import artifact_storage
from tests.concurrency import all_at_once
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db(transaction=True)


def _request(
    live_server,
    token: str,
    method: str,
    path: str,
    body=None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    url = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        conn.request(
            method, path, body=body, headers={"Authorization": f"Bearer {token}", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _token(user) -> str:
    return token_create(actor=Actor.system("cli", user=user), user=user, name="test")[1]


def test_fifty_concurrent_version_creations_get_exactly_1_to_50(live_server, data_scientist):
    make_model(data_scientist, "busy")
    token = _token(data_scientist)
    results = all_at_once(
        50,
        lambda i: _request(
            live_server,
            token,
            "POST",
            "/api/v1/models/busy/versions/",
            json.dumps({"source": f"s3://runs/{i}", "metrics": {"auc": i / 100}}),
            {"Content-Type": "application/json"},
        ),
    )
    assert [status for status, _ in results] == [201] * 50, results
    assert sorted(body["version"] for _, body in results) == list(range(1, 51))
    assert sorted(ModelVersion.objects.values_list("version", flat=True)) == list(range(1, 51))
    assert len({body["source"] for _, body in results}) == 50


def test_concurrent_retries_with_one_idempotency_key_create_one_version(
    live_server, data_scientist
):
    make_model(data_scientist, "retry")
    token = _token(data_scientist)
    results = all_at_once(
        10,
        lambda _: _request(
            live_server,
            token,
            "POST",
            "/api/v1/models/retry/versions/",
            json.dumps({"source": "s3://same"}),
            {"Content-Type": "application/json", "Idempotency-Key": "k-1"},
        ),
    )
    assert sorted(status for status, _ in results) == [200] * 9 + [201]
    assert {body["version"] for _, body in results} == {1}
    assert ModelVersion.objects.count() == 1


def test_200_mb_upload_streams_with_bounded_memory(live_server, data_scientist):
    registered_model = make_model(data_scientist, "big")
    make_version(data_scientist, registered_model)
    token = _token(data_scientist)
    size, chunk = 200 * 1024 * 1024, 1024 * 1024
    expected = hashlib.sha256()
    block = bytes(range(256)) * (chunk // 256)

    def body():
        for i in range(size // chunk):
            piece = i.to_bytes(8, "big") + block[8:]
            expected.update(piece)
            yield piece

    tracemalloc.start()
    try:
        status, result = _request(
            live_server,
            token,
            "POST",
            "/api/v1/models/big/versions/1/artifacts/?filename=big.bin",
            body(),
            {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 201, result
    assert peak < 50 * 1024 * 1024, f"peak Python allocation {peak / 2**20:.1f} MiB"
    assert result["size"] == size and result["sha256"] == expected.hexdigest()
    artifact = Artifact.objects.get()
    assert artifact_storage().size(artifact.storage_key) == size


def test_concurrent_direct_moves_leave_exactly_one_production_version(data_scientist, ml_engineer):
    from registry import services
    from tests.factories import actor_for, no_approval

    registered_model = make_model(data_scientist, "race")
    no_approval(registered_model)
    versions = [make_version(data_scientist, registered_model) for _ in range(6)]

    def promote(i: int) -> None:
        services.version_stage_set(
            actor=actor_for(ml_engineer),
            version=versions[i],
            stage="production",
            archive_existing=True,
        )

    all_at_once(len(versions), promote, close_connections=True)
    stages = list(
        ModelVersion.objects.filter(registered_model=registered_model).values_list(
            "stage", flat=True
        )
    )
    assert stages.count("production") == 1 and stages.count("archived") == 5
