"""What governance shows on the registry's pages (registry/panels.py): requests on the home
page; the policy, protected aliases and stage history on a model's page; readiness on a
version's page; the compliance report in the admin."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.permissions import AnyUser
from governance import compliance, history, policies, promotions, selectors
from governance.models import PromotionRequest
from registry.models import ModelVersion, RegisteredModel

if TYPE_CHECKING:  # a typing-only name (selectors define it for type checkers)
    from registry.selectors import ModelRow


def home(*, user: AnyUser) -> dict[str, Any]:
    requests = selectors.promotion_request_list(user=user).order_by("-created_at", "-pk")
    awaiting = selectors.awaiting_review(user, requests)
    return {
        "awaiting": awaiting[:10],
        "mine": requests.filter(
            requested_by=getattr(user, "pk", None), status__in=PromotionRequest.OPEN
        )[:10],
        "recent": requests.filter(status=PromotionRequest.Status.APPLIED).order_by(
            "-applied_at", "-pk"
        )[:10],
        "request_counts": {
            "awaiting": awaiting.count(),
            "open": requests.filter(status__in=PromotionRequest.OPEN).count(),
        },
    }


def model(*, user: AnyUser, registered_model: ModelRow, at: datetime | None) -> dict[str, Any]:
    """For the model's page, which shows the row registry.selectors.registered_model_get
    returns (with its aliases)."""
    policy = policies.policy_for(registered_model)
    return {
        "policy": policy,
        "protected": [
            n for n in (registered_model.alias_map or {}) if policies.is_protected(policy, n)
        ],
        "production_history": history.timeline(
            registered_model, kind="stage", name=ModelVersion.Stage.PRODUCTION, limit=20
        ),
        "at_state": history.at_instant(registered_model, at) if at is not None else None,
        "open_requests": list(
            selectors.promotion_request_list(
                user=user, filters=selectors.RequestFilters(model=registered_model.name)
            )
            .filter(status__in=PromotionRequest.OPEN)
            .order_by("-created_at", "-pk")[:20]
        ),
    }


def version(*, user: AnyUser, version: ModelVersion) -> dict[str, Any]:
    production = promotions.preview(version, stage=ModelVersion.Stage.PRODUCTION)
    return {"checks": production.checks, "production": production.current}


def compliance_report(*, registered_model: RegisteredModel) -> dict[str, Any]:
    return {"report": compliance.report(registered_model)}
