"""What seals a version, read in one round trip (issue 16, item 2): every fact that seals is
named, facts that do not seal (an unprotected alias, a deployment outside production, a
closed request, another version's state) are left out, and an upload answers in a fixed
number of statements that does not grow with the registry."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.errors import Conflict
from governance import content
from governance.models import Policy, PromotionRequest
from registry import services
from registry.models import Alias, Deployment, ModelVersion, RegisteredModel
from registry.services.jobs import job_start_within
from tests.factories import actor_for, make_model, make_version

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _request(version: ModelVersion, status: str, user) -> PromotionRequest:
    now = timezone.now()
    return PromotionRequest.objects.create(
        registered_model=version.registered_model,
        version=version,
        target_stage="production",
        status=status,
        requested_by=user,
        created_at=now,
        updated_at=now,
    )


def _deploy(version: ModelVersion, environment: str, status: str = "active") -> None:
    now = timezone.now()
    Deployment.objects.create(
        version=version,
        environment=environment,
        target=f"https://{environment}.example/",
        status=status,
        deployed_at=now,
        retired_at=None if status == "active" else now,
    )


def _alias(version: ModelVersion, name: str) -> None:
    Alias.objects.create(registered_model=version.registered_model, name=name, version=version)


def test_every_seal_is_named_and_nothing_else(api, data_scientist):
    registered_model = make_model(data_scientist, "sealed", risk_tier="high")
    v1, v2 = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    assert content.seals(v1) == []
    ModelVersion.objects.filter(pk=v1.pk).update(stage="staging")
    second = _request(v1, "approved", data_scientist)
    first = _request(v1, "pending", data_scientist)
    _request(v1, "rejected", data_scientist)
    _alias(v1, "champion")  # protected by the high tier's policy
    _alias(v1, "shadow")  # not protected
    _deploy(v1, "production")
    _deploy(v1, "Prod ")  # another production name, with case and blanks
    _deploy(v1, "dev")  # not production
    _deploy(v1, "production-eu", status="retired")
    # The other version's facts are not v1's.
    _alias(v2, "prod")
    ModelVersion.objects.filter(pk=v2.pk).update(stage="production")

    v1.refresh_from_db()
    ids = sorted([first.pk, second.pk])
    expected = [
        "it is in staging",
        f"promotion request #{ids[0]}, #{ids[1]} is open",
        "it holds the protected alias 'champion'",
        "it serves in production environment 'Prod ', 'production'",
    ]
    assert content.seals(v1) == expected
    assert content.seals(ModelVersion.objects.get(pk=v2.pk)) == [
        "it is in production",
        "it holds the protected alias 'prod'",
    ]
    # A model is sealed by all its live versions' facts together.
    assert content.model_seals(registered_model) == [
        "it is in production and staging",
        f"promotion request #{ids[0]}, #{ids[1]} is open",
        "it holds the protected alias 'champion', 'prod'",
        "it serves in production environment 'Prod ', 'production'",
    ]

    # Through the API, the upload names the same seals and stores nothing.
    response = api(data_scientist).post(
        f"{API}/models/sealed/versions/{v1.version}/artifacts/?filename=late.pkl",
        data=b"late",
        content_type="application/octet-stream",
    )
    assert response.status_code == 409, response.content
    assert response.json()["sealed_by"] == expected
    assert not v1.artifacts.filter(filename="late.pkl").exists()


def test_the_policy_in_force_decides_which_aliases_seal(data_scientist, settings):
    registered_model = make_model(data_scientist, "own-policy", risk_tier="high")
    other = make_model(data_scientist, "tier-policy", risk_tier="high")
    version = make_version(data_scientist, registered_model)
    twin = make_version(data_scientist, other)
    for v in (version, twin):
        _alias(v, "gold")
        _alias(v, "champion")
    # The model's own policy replaces its tier's entirely; the other model keeps the tier's.
    Policy.objects.create(registered_model=registered_model, protected_aliases=["gold"])
    assert content.seals(ModelVersion.objects.get(pk=version.pk)) == [
        "it holds the protected alias 'gold'"
    ]
    assert content.seals(ModelVersion.objects.get(pk=twin.pk)) == [
        "it holds the protected alias 'champion'"
    ]


def _upload_statements(api, user, name: str, filename: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api(user).post(
            f"{API}/models/{name}/versions/1/artifacts/?filename={filename}",
            data=filename.encode(),
            content_type="application/octet-stream",
        )
    assert response.status_code == 201, response.content
    return len(captured)


def test_an_upload_and_its_inspection_cost_a_fixed_number_of_statements(api, data_scientist):
    """19 inside the test's transaction: the model and version looked up, the seal facts and
    policy before the bytes stream (2), the version locked and its model read after the lock,
    the seal facts and policy again (2), the filename free (twice), the file's row, the
    inspection's reuse check, its row (in a savepoint, so a race becomes a 409), and the audit
    chain's head and insert; PostgreSQL adds the chain's advisory lock. It was 30 before the
    seal facts came in one statement."""
    registered_model = make_model(data_scientist, "uploads")
    version = make_version(data_scientist, registered_model)
    _upload_statements(api, data_scientist, "uploads", "warm.pkl")
    first = _upload_statements(api, data_scientist, "uploads", "a.pkl")
    for i in range(5):  # more files, requests, aliases and deployments change nothing
        _alias(make_version(data_scientist, registered_model), f"a{i}")
        _deploy(version, f"dev-{i}")
        _upload_statements(api, data_scientist, "uploads", f"more-{i}.pkl")
    assert _upload_statements(api, data_scientist, "uploads", "b.pkl") == first
    assert first <= 19 + (1 if connection.vendor == "postgresql" else 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_tier_raised_while_an_upload_waits_for_the_lock_is_the_tier_it_checks(data_scientist):
    """An upload's second seal check runs under the version's row lock. The model is read after
    the lock is granted, not joined into the locking statement (PostgreSQL re-reads a locked
    row after the wait, not the rows joined to it): a risk tier raised while the upload waits
    protects 'champion', and the upload is refused."""
    registered_model = make_model(data_scientist, "waiting", risk_tier="low")
    version = make_version(data_scientist, registered_model)
    _alias(version, "champion")  # not protected by the low tier's policy
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def holder() -> None:
        try:
            with transaction.atomic():
                list(ModelVersion.objects.select_for_update().filter(pk=version.pk))
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    def uploader() -> None:
        try:
            services.artifact_upload(
                actor=actor_for(data_scientist),
                version=ModelVersion.objects.select_related("registered_model").get(pk=version.pk),
                filename="late.pkl",
                chunks=[b"late"],
            )
            outcome["upload"] = "stored"
        except Conflict as exc:
            outcome["upload"] = exc.code
        finally:
            connections.close_all()

    lock = threading.Thread(target=holder)
    lock.start()
    assert holding.wait(5)
    upload = threading.Thread(target=uploader)
    upload.start()
    time.sleep(0.5)  # the upload streams its bytes, then waits for the row lock
    RegisteredModel.objects.filter(pk=registered_model.pk).update(risk_tier="high")
    release.set()
    lock.join(10)
    upload.join(10)
    assert outcome == {"upload": "version_sealed"}
    assert not version.artifacts.filter(filename="late.pkl").exists()


@pytest.mark.django_db(transaction=True)
def test_the_inspection_queues_only_inside_a_transaction(data_scientist):
    """job_start_within has no transaction of its own: called outside one it refuses (and
    queues nothing) rather than take row locks that hold nothing; job_start opens its own."""
    registered_model = make_model(data_scientist, "jobs")
    version = make_version(data_scientist, registered_model)
    artifact = services.artifact_upload(
        actor=actor_for(data_scientist), version=version, filename="m.pkl", chunks=[b"m"]
    )
    artifact.jobs.all().delete()
    start = {"actor": actor_for(data_scientist), "version": version, "kind": "inspect"}
    with pytest.raises(TransactionManagementError):
        job_start_within(**start, artifact=artifact)
    assert not artifact.jobs.exists()
    job, created = services.job_start(**start, artifact=artifact)
    assert created and job.artifact_id == artifact.pk
