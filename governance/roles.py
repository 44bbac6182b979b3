"""Roles are groups holding global (all-model) permissions; per-model grants add to them."""

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from core import audit
from core.actors import Actor
from governance.policies import tier_policies_ensure

_LINEAGE_ADD = [
    "registry.add_featuresource",
    "registry.add_logicalfeature",
    "registry.add_dataset",
    "registry.add_coderef",
    "registry.add_trainingrun",
]

VIEWER = ["registry.view_registeredmodel"]
DATA_SCIENTIST = [
    *VIEWER,
    "registry.change_registeredmodel",
    "registry.add_registeredmodel",
    *_LINEAGE_ADD,
]
ML_ENGINEER = [*DATA_SCIENTIST, "registry.request_promotion"]
REVIEWER = [*VIEWER, "registry.approve_promotion"]
# Auditors read every model and the whole audit log (events tied to no model included).
AUDITOR = [*VIEWER, "core.view_auditevent"]
ADMIN = [
    *ML_ENGINEER,
    "registry.approve_promotion",
    "registry.delete_registeredmodel",
    "registry.manage_access",
    "core.view_auditevent",
]

ROLES: dict[str, list[str]] = {
    "viewer": VIEWER,
    "data scientist": DATA_SCIENTIST,
    "ml engineer": ML_ENGINEER,
    "reviewer": REVIEWER,
    "auditor": AUDITOR,
    "admin": ADMIN,
}


@transaction.atomic
def roles_sync(*, actor: Actor) -> dict[str, Group]:
    """Create the role groups and set their global permissions to the defaults above."""
    groups = {}
    for role, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for label in perms:
            app, codename = label.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app, codename=codename))
        before = set(group.permissions.values_list("codename", flat=True))
        group.permissions.set(wanted)
        after = {p.codename for p in wanted}
        if before != after:
            audit.record(
                actor=actor,
                action="role.synced",
                target=group,
                details={
                    "role": role,
                    "added": sorted(after - before),
                    "removed": sorted(before - after),
                },
            )
        groups[role] = group
    return groups


@transaction.atomic
def defaults_sync(*, actor: Actor) -> dict[str, Group]:
    """What every database starts from: the role groups holding exactly their default
    permissions, and a policy row for every risk tier (existing policies are kept as edited).
    Idempotent; `migrate` runs it (below), the demo too."""
    groups = roles_sync(actor=actor)
    tier_policies_ensure(actor=actor)
    return groups


def defaults_sync_after_migrate(sender: AppConfig, *, using: str, **kwargs: object) -> None:
    """post_migrate receiver: after `migrate` (and `flush`), create or repair the role groups
    and tier policies, so a fresh production database has the roles the README describes and
    a tampered role gets its permissions back. A partial migrate (the schema not yet at the
    models) is left alone: the tables may not match the code."""
    if using != DEFAULT_DB_ALIAS:
        return
    executor = MigrationExecutor(connections[using])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return
    defaults_sync(actor=Actor.system("cli"))
