"""`migrate` leaves every database with the role groups and tier policies the README
describes (issue 12: only the demo created them), repairs a tampered role and keeps what an
administrator edited."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from core.models import AuditEvent
from governance.models import Policy
from governance.policies import TIER_DEFAULTS
from governance.roles import ROLES

ROOT = Path(__file__).resolve().parents[2]


def _migrate_fresh(var_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**env, "MODELGATE_VAR_DIR": str(var_dir)},
        check=True,
        timeout=300,
    )


def _state(database: Path) -> tuple[dict[str, set[str]], dict[str, int], int]:
    with sqlite3.connect(database) as db:
        roles: dict[str, set[str]] = {}
        for group, app, codename in db.execute(
            "SELECT g.name, ct.app_label, p.codename FROM auth_group g "
            "JOIN auth_group_permissions gp ON gp.group_id = g.id "
            "JOIN auth_permission p ON p.id = gp.permission_id "
            "JOIN django_content_type ct ON ct.id = p.content_type_id"
        ):
            roles.setdefault(group, set()).add(f"{app}.{codename}")
        policies = dict(
            db.execute(
                "SELECT risk_tier, production_approvals FROM "
                "governance_policy WHERE risk_tier IS NOT NULL"
            )
        )
        events = db.execute("SELECT count(*) FROM governance_auditevent").fetchone()[0]
    return roles, policies, events


def test_migrate_on_an_empty_database_creates_roles_and_policies_once(tmp_path):
    _migrate_fresh(tmp_path)
    roles, policies, events = _state(tmp_path / "modelgate.sqlite3")
    assert roles == {role: set(perms) for role, perms in ROLES.items()}
    assert policies == {
        tier: values["production_approvals"] for tier, values in TIER_DEFAULTS.items()
    }
    assert events == len(ROLES)  # one role.synced event per role created

    _migrate_fresh(tmp_path)  # again: nothing to do, nothing written
    assert _state(tmp_path / "modelgate.sqlite3") == (roles, policies, events)


@pytest.mark.django_db
def test_migrate_restores_a_tampered_role_and_audits_it():
    reviewer = Group.objects.get(name="reviewer")
    reviewer.permissions.remove(Permission.objects.get(codename="approve_promotion"))
    reviewer.permissions.add(Permission.objects.get(codename="delete_registeredmodel"))
    Group.objects.get(name="viewer").delete()

    call_command("migrate", verbosity=0)

    assert {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name="reviewer").permissions.all()
    } == set(ROLES["reviewer"])
    assert [p.codename for p in Group.objects.get(name="viewer").permissions.all()] == [
        "view_registeredmodel"
    ]
    event = AuditEvent.objects.filter(action="role.synced", details__role="reviewer").latest(
        "sequence"
    )
    assert event.details["added"] == ["approve_promotion"]
    assert event.details["removed"] == ["delete_registeredmodel"]
    assert AuditEvent.objects.filter(action="role.synced", details__role="viewer").exists()

    before = AuditEvent.objects.count()
    call_command("migrate", verbosity=0)
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_migrate_keeps_edited_policies_and_restores_a_missing_tier():
    Policy.objects.filter(risk_tier="low").update(production_approvals=3)
    Policy.objects.filter(risk_tier="critical").delete()

    call_command("migrate", verbosity=0)

    assert Policy.objects.get(risk_tier="low").production_approvals == 3
    critical = Policy.objects.get(risk_tier="critical")
    assert critical.admin_approval_required is True
    assert critical.protected_aliases == TIER_DEFAULTS["critical"]["protected_aliases"]
    assert AuditEvent.objects.filter(action="policy.created", target_id=str(critical.pk)).exists()
