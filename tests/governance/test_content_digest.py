"""The content digest: what it covers and what it leaves out; who counts as a contributor;
the compliance report's check of applied approvals."""

from __future__ import annotations

import io
import pickle

import pytest
from django.contrib.auth.models import User

from core import permissions
from core.models import AuditEvent
from core.permissions import Perm
from governance import access, compliance, content, promotions
from governance.models import PromotionRequest, Review
from registry import services
from registry.models import Artifact
from registry.services.artifacts import read_chunks
from tests.concurrency import all_at_once
from tests.factories import (
    SIGNATURE,
    UserFactory,
    actor_for,
    approve_card,
    make_artifact,
    make_model,
    make_version,
    superuser,
)

pytestmark = pytest.mark.django_db


def test_every_covered_part_changes_the_digest_and_the_description_does_not(data_scientist):
    registered_model = make_model(data_scientist, "m")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    seen = {content.digest(version)}
    actor = actor_for(data_scientist)

    services.version_update(actor=actor, version=version, description="words only")
    assert content.digest(version) in seen
    make_artifact(data_scientist, version, data=pickle.dumps("w"))
    seen.add(content.digest(version))
    services.version_metrics_log(actor=actor, version=version, metrics={"auc": 0.95})
    seen.add(content.digest(version))
    services.version_update(
        actor=actor, version=version, input_example=[{"age": 3, "income": 1.0, "region": "x"}]
    )
    seen.add(content.digest(version))
    version.refresh_from_db()
    services.version_update(actor=actor, version=version, signature=None)
    seen.add(content.digest(version))
    assert len(seen) == 5  # each change made a digest never seen before


def test_a_derived_file_leaves_the_digest_alone_and_is_marked(data_scientist, ml_engineer):
    registered_model = make_model(data_scientist, "m")
    version = make_version(data_scientist, registered_model)
    source = make_artifact(data_scientist, version, data=pickle.dumps("w"))
    before = content.digest(version)
    job, _ = services.job_start(
        actor=actor_for(data_scientist), version=version, kind="convert_onnx", artifact=source
    )
    from registry.services.jobs import job_claim

    job = job_claim(job.pk, "task")  # only the attempt running the job stores what it derives
    derived = services.artifact_upload(
        actor=actor_for(data_scientist),
        version=version,
        filename="m.onnx",
        derived_from=source,
        derived_by_job=job,
        chunks=read_chunks(io.BytesIO(b"\x08\x07onnx")),
    )
    assert content.digest(version) == before
    assert (derived.derived, derived.derived_by_job_id, derived.input_digest) == (
        True,
        job.pk,
        before,
    )
    assert AuditEvent.objects.filter(action="artifact.derived", target_id=str(derived.pk)).exists()
    # Even a derived file is inspected: a job was queued for it.
    assert derived.jobs.filter(kind="inspect").exists()


def test_card_authors_count_as_contributors_only_when_the_policy_requires_the_card(data_scientist):
    low = make_model(data_scientist, "low", risk_tier="low")
    high = make_model(data_scientist, "high", risk_tier="high")
    for registered_model in (low, high):
        approve_card(make_version(data_scientist, registered_model))
    writer = User.objects.get(username="card-writer")
    assert writer.pk not in content.contributors(low.versions.get())
    assert writer.pk in content.contributors(high.versions.get())


def test_whoever_changed_covered_metadata_is_a_contributor(data_scientist, ml_engineer):
    registered_model = make_model(data_scientist, "m")
    version = make_version(data_scientist, registered_model)
    services.version_update(actor=actor_for(ml_engineer), version=version, description="x")
    assert ml_engineer.pk not in content.contributors(version)
    services.version_metrics_log(
        actor=actor_for(ml_engineer), version=version, metrics={"auc": 0.8}
    )
    assert ml_engineer.pk in content.contributors(version)


def test_compliance_flags_an_applied_approval_that_no_longer_qualifies(
    data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "m")  # medium: one approval
    version = make_version(
        data_scientist, registered_model, signature=SIGNATURE, metrics={"auc": 0.9}
    )
    make_artifact(data_scientist, version, data=pickle.dumps("w"))
    grantee = UserFactory(username="gina")
    permissions.grant(Perm.VIEW, registered_model, user=grantee, granted_by=superuser())
    permissions.grant(
        Perm.APPROVE_PROMOTION, registered_model, user=grantee, granted_by=superuser()
    )
    request = promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=version, target_stage="production"
    )
    promotions.promotion_request_review(
        actor=actor_for(grantee), promotion_request=request, decision="approve"
    )
    request.refresh_from_db()
    assert request.status == "applied"
    assert compliance.report(registered_model)["compliant"]
    assert Review.objects.get(request=request).content_digest == content.digest(version)
    # The grant is withdrawn by an administrator: that approval would not qualify today.
    access.grant_remove(
        actor=actor_for(superuser()),
        registered_model=registered_model,
        perm=Perm.APPROVE_PROMOTION,
        user=grantee,
    )
    report = compliance.report(registered_model)
    assert not report["compliant"]
    assert any(
        "gina" in f["message"] and "no approval right" in f["message"] for f in report["findings"]
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_file_racing_a_request_is_in_its_digest_or_refused(roles, data_scientist, ml_engineer):
    """The request locks the version's row before it records the digest; an upload checks
    the seal under the same lock: the file is either covered by the request or refused."""
    registered_model = make_model(data_scientist, "race")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    make_artifact(data_scientist, version, data=pickle.dumps("w"))

    def act(i: int) -> str:
        try:
            if i == 0:
                promotions.promotion_request_create(
                    actor=actor_for(ml_engineer), version=version, target_stage="staging"
                )
            else:
                services.artifact_upload(
                    actor=actor_for(data_scientist),
                    version=version,
                    filename="late.pkl",
                    chunks=read_chunks(io.BytesIO(pickle.dumps("late"))),
                )
            return "ok"
        except Exception as exc:  # noqa: BLE001 - the outcome is the assertion
            return getattr(exc, "code", repr(exc))

    outcomes = all_at_once(2, act, close_connections=True)
    assert outcomes in (["ok", "ok"], ["ok", "version_sealed"])
    request = PromotionRequest.objects.get()
    assert request.content_digest == content.digest(version)
    assert Artifact.objects.filter(filename="late.pkl").exists() == (outcomes[1] == "ok")


def test_an_administrator_who_trusted_a_file_is_a_contributor(data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    version = make_version(data_scientist, registered_model)
    artifact = make_artifact(data_scientist, version, data=b"not a known format")
    assert admin_user.pk not in content.contributors(version)
    services.artifact_trust(actor=actor_for(admin_user), artifact=artifact)
    assert admin_user.pk in content.contributors(version)
