from __future__ import annotations

import pytest

from core.errors import Conflict, Forbidden, ValidationFailed
from core.models import AuditEvent
from registry import services
from registry.models import Alias, ModelVersion
from tests.factories import (
    SIGNATURE,
    actor_for,
    make_model,
    make_version,
    no_approval,
    place,
)

pytestmark = pytest.mark.django_db


def test_versions_are_numbered_per_model(data_scientist):
    a, b = make_model(data_scientist, "a"), make_model(data_scientist, "b")
    assert [make_version(data_scientist, a).version for _ in range(3)] == [1, 2, 3]
    assert make_version(data_scientist, b).version == 1
    assert AuditEvent.objects.filter(action="version.created").count() == 4


def test_create_stores_metrics_params_signature_and_tags(data_scientist):
    registered_model = make_model(data_scientist)
    v = make_version(
        data_scientist,
        registered_model,
        params={"depth": 3, "lr": 0.1},
        metrics=[
            {"name": "auc", "value": 0.91, "dataset": "holdout", "split": "test"},
            {"name": "auc", "value": 0.95},
        ],
        signature=SIGNATURE,
        input_example=[{"age": 3, "income": 1.0, "region": "n"}],
        tags={"k": "v"},
        source="s3://b/m",
        run_id="r1",
    )
    assert v.params == {"depth": 3, "lr": 0.1}
    assert sorted((m.name, m.dataset, m.value) for m in v.metrics.all()) == [
        ("auc", "", 0.95),
        ("auc", "holdout", 0.91),
    ]
    assert v.signature["inputs"][0] == {"name": "age", "type": "long", "required": True}
    assert v.status == "ready" and v.stage == "none" and v.created_by == data_scientist


@pytest.mark.parametrize(
    "field,value",
    [
        ("metrics", {"auc": "high"}),
        ("metrics", {"auc": float("nan")}),
        ("params", {"k": {"nested": 1}}),
        ("signature", {"inputs": [{"name": "a", "type": "bogus"}]}),
        ("signature", {"inputs": [{"name": "a", "type": "long"}, {"name": "a", "type": "long"}]}),
        (
            "signature",
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 0]}}]},
        ),
        ("signature", {"outputs": []}),
        ("pip_requirements", ["ok", 3]),
    ],
)
def test_create_refuses_malformed_fields_and_writes_nothing(data_scientist, field, value):
    registered_model = make_model(data_scientist)
    with pytest.raises(ValidationFailed) as exc:
        make_version(data_scientist, registered_model, **{field: value})
    assert field in exc.value.fields
    assert not ModelVersion.objects.exists()
    registered_model.refresh_from_db()
    assert registered_model.last_version_number == 0


def test_input_example_must_match_signature(data_scientist):
    registered_model = make_model(data_scientist)
    with pytest.raises(ValidationFailed) as exc:
        make_version(
            data_scientist,
            registered_model,
            signature=SIGNATURE,
            input_example=[{"age": "old", "income": 1.0, "region": "n"}],
        )
    assert exc.value.fields == {"input_example": [exc.value.message]}


def test_idempotency_key_returns_the_first_version(data_scientist):
    registered_model = make_model(data_scientist)
    actor = actor_for(data_scientist)
    first, created = services.version_create(
        actor=actor, registered_model=registered_model, source="s3://x", idempotency_key="abc"
    )
    again, created_again = services.version_create(
        actor=actor, registered_model=registered_model, source="s3://x", idempotency_key="abc"
    )
    assert created and not created_again and first.pk == again.pk
    assert ModelVersion.objects.count() == 1
    with pytest.raises(Conflict) as exc:
        services.version_create(
            actor=actor,
            registered_model=registered_model,
            source="s3://other",
            idempotency_key="abc",
        )
    assert exc.value.code == "idempotency_key_reused"


def test_viewer_cannot_create_versions(data_scientist, viewer):
    registered_model = make_model(data_scientist)
    with pytest.raises(Forbidden):
        make_version(viewer, registered_model)


def test_direct_moves_to_staging_or_production_need_a_no_approval_policy(
    data_scientist, ml_engineer, viewer
):
    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model)
    with pytest.raises(Forbidden) as exc:  # no request_promotion at all
        services.version_stage_set(actor=actor_for(viewer), version=v, stage="staging")
    assert exc.value.code == "permission_denied"
    for stage in ("staging", "production"):
        with pytest.raises(Forbidden) as exc:
            services.version_stage_set(actor=actor_for(ml_engineer), version=v, stage=stage)
        assert exc.value.code == "approval_required"
        assert "medium-risk policy" in exc.value.message
        assert "promotion-requests" in exc.value.message
    v.refresh_from_db()
    assert v.stage == "none"
    no_approval(registered_model)
    services.version_stage_set(actor=actor_for(ml_engineer), version=v, stage="production")
    v.refresh_from_db()
    assert v.stage == "production"
    event = AuditEvent.objects.filter(action="version.stage_changed").latest("pk")
    assert event.details == {
        "from": "none",
        "to": "production",
        "archived_versions": [],
        "promotion_request": None,
    }


def test_archiving_needs_only_change_permission(data_scientist):
    registered_model = make_model(data_scientist)
    v = place(make_version(data_scientist, registered_model), "production")
    services.version_stage_set(actor=actor_for(data_scientist), version=v, stage="archived")
    v.refresh_from_db()
    assert v.stage == "archived"


def test_archive_existing_leaves_one_production_version(data_scientist):
    registered_model = make_model(data_scientist)
    v1, v2 = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    place(v1, "production")
    place(v2, "production", archive_existing=True)
    assert dict(registered_model.versions.values_list("version", "stage")) == {
        1: "archived",
        2: "production",
    }


def test_pending_versions_cannot_be_promoted(data_scientist, reviewer):
    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model, status="pending_registration")
    with pytest.raises(Conflict) as exc:
        place(v, "production")
    assert exc.value.code == "version_not_ready"


def test_signature_is_sealed_once_staged(data_scientist):
    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model, signature=SIGNATURE)
    place(v, "staging")
    with pytest.raises(Conflict) as exc:
        services.version_update(actor=actor_for(data_scientist), version=v, signature=None)
    assert exc.value.code == "version_sealed"
    assert exc.value.extra["sealed_by"] == ["it is in staging"]
    services.version_update(actor=actor_for(data_scientist), version=v, description="ok")
    v.refresh_from_db()
    assert v.signature is not None and v.description == "ok"


def test_delete_refuses_staged_and_deployed_versions(data_scientist):
    registered_model = make_model(data_scientist)
    actor = actor_for(data_scientist)
    staged, deployed = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    place(staged, "staging")
    services.deployment_create(actor=actor, version=deployed, environment="staging", target="t")
    for v in (staged, deployed):
        with pytest.raises(Conflict) as exc:
            services.version_delete(actor=actor, version=v)
        assert exc.value.code == "version_in_use"
    assert not ModelVersion.objects.filter(deleted_at__isnull=False).exists()


def test_delete_removes_aliases_and_numbers_are_never_reused(data_scientist, admin_user):
    registered_model = make_model(data_scientist)
    v1, v2 = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    services.alias_set(
        actor=actor_for(data_scientist),
        registered_model=registered_model,
        name="champion",
        version=v2,
    )
    services.version_delete(actor=actor_for(data_scientist), version=v2)
    assert not Alias.objects.exists()
    event = AuditEvent.objects.get(action="version.deleted")
    assert event.details == {"removed_aliases": ["champion"]}
    services.version_purge(actor=actor_for(admin_user), version=v2)
    assert make_version(data_scientist, registered_model).version == 3
    assert v1.version == 1


def test_metrics_log_upserts_and_is_frozen_after_staging(data_scientist):
    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model, metrics={"auc": 0.8})
    actor = actor_for(data_scientist)
    services.version_metrics_log(actor=actor, version=v, metrics={"auc": 0.85, "f1": 0.7})
    assert dict(v.metrics.values_list("name", "value")) == {"auc": 0.85, "f1": 0.7}
    place(v, "staging")
    with pytest.raises(Conflict):
        services.version_metrics_log(actor=actor, version=v, metrics={"auc": 0.99})


def test_alias_moves_atomically_and_is_audited(data_scientist):
    registered_model = make_model(data_scientist)
    v1, v2 = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    actor = actor_for(data_scientist)
    services.alias_set(actor=actor, registered_model=registered_model, name="champion", version=v1)
    services.alias_set(actor=actor, registered_model=registered_model, name="champion", version=v2)
    assert Alias.objects.get().version == v2
    moved = AuditEvent.objects.get(action="alias.moved")
    assert moved.details == {"name": "champion", "from": 1, "to": 2, "promotion_request": None}
    for bad in ("latest", "v3", "has space", ""):
        with pytest.raises(ValidationFailed):
            services.alias_set(actor=actor, registered_model=registered_model, name=bad, version=v1)


def test_alias_refuses_a_version_of_another_model(data_scientist):
    a, b = make_model(data_scientist, "a"), make_model(data_scientist, "b")
    vb = make_version(data_scientist, b)
    with pytest.raises(ValidationFailed):
        services.alias_set(
            actor=actor_for(data_scientist), registered_model=a, name="x", version=vb
        )


def test_purge_keeps_versions_with_deployment_records_and_restore_brings_back(
    data_scientist, admin_user
):
    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model)
    admin = actor_for(admin_user)
    deployment = services.deployment_create(
        actor=admin, version=v, environment="staging", target="t"
    )
    services.deployment_retire(actor=admin, deployment=deployment)
    services.version_delete(actor=admin, version=v)
    with pytest.raises(Conflict) as exc:
        services.version_purge(actor=admin, version=v)
    assert exc.value.code == "version_in_use"
    with pytest.raises(Forbidden):
        services.version_restore(actor=actor_for(data_scientist), version=v)
    services.version_restore(actor=admin, version=v)
    v.refresh_from_db()
    assert v.deleted_at is None
    assert AuditEvent.objects.filter(action="version.restored").count() == 1


def test_model_purge_removes_deployment_records_but_keeps_the_audit_trail(
    data_scientist, admin_user
):
    from registry.models import Deployment, RegisteredModel

    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model)
    admin = actor_for(admin_user)
    services.deployment_retire(
        actor=admin,
        deployment=services.deployment_create(
            actor=admin, version=v, environment="staging", target="t"
        ),
    )
    services.registered_model_delete(actor=admin, registered_model=registered_model)
    services.registered_model_purge(actor=admin, registered_model=registered_model)
    assert not RegisteredModel.objects.exists() and not Deployment.objects.exists()
    assert AuditEvent.objects.filter(
        registered_model_id=registered_model.pk, action="deployment.created"
    ).exists()


def test_version_status_can_be_marked_failed_with_a_message(data_scientist):
    registered_model = make_model(data_scientist)
    v = make_version(data_scientist, registered_model, status="pending_registration")
    services.version_update(
        actor=actor_for(data_scientist),
        version=v,
        status="failed_registration",
        status_message="copy failed",
    )
    v.refresh_from_db()
    assert (v.status, v.status_message) == ("failed_registration", "copy failed")
    with pytest.raises(ValidationFailed):
        services.version_update(actor=actor_for(data_scientist), version=v, status="bogus")
