"""Governance as the registry's governor (registry/governed.py): approvals before direct stage
and alias moves, sealed versions, content digests and stage history, each answered by the
module that owns the rule."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User

from core import permissions
from core.actors import Actor
from core.errors import Forbidden
from core.permissions import Perm
from core.refusals import gate_refusal
from governance import content, history, policies, promotions
from registry.models import ModelVersion, RegisteredModel


class Governance:
    sealed_fields: tuple[str, ...] = content.SEALED_FIELDS

    def require_unsealed(self, version: ModelVersion, what: str) -> None:
        content.require_unsealed(version, what)

    def model_sealed(self, registered_model: RegisteredModel) -> bool:
        return bool(content.model_seals(registered_model))

    def content_digest(self, version: ModelVersion) -> str:
        return content.digest(version)

    def require_direct_stage(self, actor: Actor, version: ModelVersion, stage: str) -> None:
        registered_model = version.registered_model
        policy = policies.policy_for(registered_model)
        needed = policy.approvals_for(stage)
        if needed or policy.admin_approval_required:
            why = f"{needed} approval(s)" if needed else "an administrator's approval"
            raise gate_refusal(
                Forbidden(
                    f"Under the {policies.describe(policy)}, {stage} needs {why}: "
                    "open a promotion request (POST /api/v1/promotion-requests) instead.",
                    code="approval_required",
                ),
                registered_model,
                f"move to {stage}",
            )
        promotions.require_ready(version, f"move to {stage}", stage=stage)

    def require_direct_alias(self, actor: Actor, version: ModelVersion, name: str) -> None:
        registered_model = version.registered_model
        policy = policies.policy_for(registered_model)
        if not policies.is_protected(policy, name):
            return
        # A protected alias marks what serves: moving it is a promotion, whoever may edit.
        permissions.require(actor.user, Perm.REQUEST_PROMOTION, registered_model)
        if policy.production_approvals or policy.admin_approval_required:
            raise gate_refusal(
                Forbidden(
                    f"Alias '{name}' is protected by the {policies.describe(policy)}: open a "
                    "promotion request (POST /api/v1/promotion-requests) to move it.",
                    code="approval_required",
                ),
                registered_model,
                f"move alias '{name}'",
            )
        promotions.require_ready(version, f"move alias '{name}'", alias=name)

    def approved_for_production(self, version: ModelVersion, alias_names: Iterable[str]) -> bool:
        return policies.approved_for_production(
            version, alias_names, policies.policy_for(version.registered_model)
        )

    def protected_aliases(self, versions: Iterable[ModelVersion]) -> dict[int, list[str]]:
        versions = list(versions)
        found = policies.policies_for(
            {v.registered_model_id: v.registered_model for v in versions}.values()
        )
        return {
            v.pk: [
                name
                for name in getattr(v, "alias_names", ())
                if policies.is_protected(found[v.registered_model_id], name)
            ]
            for v in versions
        }

    def approved_versions(self, versions: Iterable[ModelVersion]) -> set[int]:
        versions = list(versions)
        found = policies.policies_for(
            {v.registered_model_id: v.registered_model for v in versions}.values()
        )
        return {
            v.pk
            for v in versions
            if policies.approved_for_production(
                v, getattr(v, "alias_names", ()), found[v.registered_model_id]
            )
        }

    def stages_moved(
        self,
        *,
        versions: Iterable[ModelVersion],
        stage: str,
        at: datetime,
        user: User | None,
        promotion_request: Any = None,
    ) -> None:
        history.stages_moved(
            versions=versions, stage=stage, at=at, user=user, promotion_request=promotion_request
        )

    def alias_moved(
        self,
        *,
        registered_model: RegisteredModel,
        name: str,
        version: ModelVersion | None,
        at: datetime,
        user: User | None,
        promotion_request: Any = None,
    ) -> None:
        history.alias_moved(
            registered_model=registered_model,
            name=name,
            version=version,
            at=at,
            user=user,
            promotion_request=promotion_request,
        )


GOVERNANCE = Governance()
