from __future__ import annotations

import pytest

from core import permissions
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.models import AuditEvent
from core.permissions import Perm
from registry import services
from registry.models import RegisteredModel
from tests.factories import actor_for, make_model, make_version, place

pytestmark = pytest.mark.django_db


def test_create_records_model_tags_grants_and_audit_event(data_scientist):
    registered_model = make_model(
        data_scientist, "credit-risk", risk_tier="high", tags={"team": "risk"}
    )
    assert registered_model.owner == data_scientist and registered_model.risk_tier == "high"
    assert {t.key: t.value for t in registered_model.tags.all()} == {"team": "risk"}
    for perm in (Perm.VIEW, Perm.CHANGE, Perm.DELETE, Perm.MANAGE_ACCESS):
        assert permissions._object_codenames(data_scientist, registered_model) >= {str(perm)}
    assert str(Perm.APPROVE_PROMOTION) not in permissions._object_codenames(
        data_scientist, registered_model
    )
    event = AuditEvent.objects.get(action="registered_model.created")
    assert event.actor == data_scientist and event.registered_model_id == registered_model.pk
    assert event.details["tags"] == {"team": "risk"}


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 257, "tab\there", " lead", "nul\x00"])
def test_create_refuses_invalid_names(data_scientist, bad):
    with pytest.raises(ValidationFailed) as exc:
        make_model(data_scientist, bad)
    assert exc.value.code == "invalid_name"
    assert not RegisteredModel.objects.exists()
    assert not AuditEvent.objects.filter(action="registered_model.created").exists()


def test_create_accepts_unicode_and_256_characters(data_scientist):
    assert make_model(data_scientist, "модель-ü " + "x" * 246).name.startswith("модель")
    assert len(make_model(data_scientist, "y" * 256).name) == 256


def test_duplicate_name_is_a_conflict_even_after_soft_delete(data_scientist, admin_user):
    registered_model = make_model(data_scientist, "dup")
    with pytest.raises(Conflict) as exc:
        make_model(data_scientist, "dup")
    assert exc.value.code == "registered_model_exists"
    services.registered_model_delete(actor=actor_for(admin_user), registered_model=registered_model)
    with pytest.raises(Conflict, match="deleted model holds this name"):
        make_model(data_scientist, "dup")


def test_viewer_cannot_create_models(viewer):
    with pytest.raises(Forbidden):
        make_model(viewer, "nope")


def test_update_changes_fields_and_audits_the_diff(data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    services.registered_model_update(
        actor=actor_for(admin_user),
        registered_model=registered_model,
        description="new",
        risk_tier="critical",
    )
    registered_model.refresh_from_db()
    assert (registered_model.description, registered_model.risk_tier) == ("new", "critical")
    event = AuditEvent.objects.get(action="registered_model.updated")
    assert event.details["changes"]["risk_tier"] == {"from": "medium", "to": "critical"}


def test_update_of_risk_tier_needs_manage_access(data_scientist, ml_engineer):
    registered_model = make_model(data_scientist, "m")
    with pytest.raises(Forbidden):
        services.registered_model_update(
            actor=actor_for(ml_engineer), registered_model=registered_model, risk_tier="low"
        )
    services.registered_model_update(
        actor=actor_for(ml_engineer),
        registered_model=registered_model,
        description="ml engineers may edit text",
    )
    registered_model.refresh_from_db()
    assert registered_model.risk_tier == "medium" and registered_model.description.startswith(
        "ml engineers"
    )


def test_outsider_gets_not_found_not_forbidden(data_scientist, outsider):
    registered_model = make_model(data_scientist, "secret")
    with pytest.raises(NotFound):
        services.registered_model_update(
            actor=actor_for(outsider), registered_model=registered_model, description="x"
        )


def test_tag_set_overwrites_and_delete_removes(data_scientist):
    registered_model = make_model(data_scientist, "m")
    actor = actor_for(data_scientist)
    services.registered_model_tag_set(
        actor=actor, registered_model=registered_model, key="k", value="1"
    )
    services.registered_model_tag_set(
        actor=actor, registered_model=registered_model, key="k", value="2"
    )
    assert registered_model.tags.get(key="k").value == "2"
    assert AuditEvent.objects.filter(action="registered_model.tag_set").count() == 2
    services.registered_model_tag_delete(actor=actor, registered_model=registered_model, key="k")
    assert not registered_model.tags.exists()


def test_delete_is_refused_while_a_version_is_in_production(data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    v = make_version(data_scientist, registered_model)
    place(v, "production")
    with pytest.raises(Conflict) as exc:
        services.registered_model_delete(
            actor=actor_for(admin_user), registered_model=registered_model
        )
    assert exc.value.code == "version_in_use"
    registered_model.refresh_from_db()
    assert registered_model.deleted_at is None


def test_soft_delete_hides_then_admin_restores(data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    services.registered_model_delete(
        actor=actor_for(data_scientist), registered_model=registered_model
    )
    assert not permissions.visible_models(data_scientist).exists()
    assert not permissions.visible_models(admin_user).exists()
    with pytest.raises(Forbidden):
        services.registered_model_restore(
            actor=actor_for(data_scientist), registered_model=registered_model
        )
    services.registered_model_restore(
        actor=actor_for(admin_user), registered_model=registered_model
    )
    assert permissions.visible_models(data_scientist).get() == registered_model
    assert AuditEvent.objects.filter(action="registered_model.restored").count() == 1


def test_purge_needs_soft_delete_first_and_removes_rows_and_grants(data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    make_version(data_scientist, registered_model)
    with pytest.raises(Conflict):
        services.registered_model_purge(
            actor=actor_for(admin_user), registered_model=registered_model
        )
    services.registered_model_delete(actor=actor_for(admin_user), registered_model=registered_model)
    services.registered_model_purge(actor=actor_for(admin_user), registered_model=registered_model)
    assert not RegisteredModel.objects.exists()
    assert not registered_model.user_grants.exists()
    assert AuditEvent.objects.filter(
        action="registered_model.purged", registered_model_id=registered_model.pk
    ).exists()


def test_tag_limit_is_enforced_for_models_and_versions(data_scientist):
    registered_model = make_model(data_scientist, "m", tags={f"k{i}": "v" for i in range(100)})
    actor = actor_for(data_scientist)
    with pytest.raises(ValidationFailed):
        services.registered_model_tag_set(
            actor=actor, registered_model=registered_model, key="one-more", value="v"
        )
    assert registered_model.tags.count() == 100
    services.registered_model_tag_set(
        actor=actor, registered_model=registered_model, key="k1", value="new"
    )
    assert registered_model.tags.get(key="k1").value == "new"
    version = make_version(
        data_scientist, registered_model, tags={f"k{i}": "v" for i in range(100)}
    )
    with pytest.raises(ValidationFailed):
        services.version_tag_set(actor=actor, version=version, key="one-more", value="v")
    assert version.tags.count() == 100
