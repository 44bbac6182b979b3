"""Permission-filtered reads for governance records: a constant number of queries per list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from core import audit, permissions
from core.errors import NotFound
from core.models import AuditEvent
from core.permissions import AnyUser, Perm
from governance import content
from governance.models import PromotionRequest


@dataclass(frozen=True)
class RequestFilters:
    model: str | None = None
    status: str | None = None
    target: str | None = None
    requested_by_me: bool = False
    awaiting_my_review: bool = False


def _user_id(user: AnyUser) -> int | None:
    """None for nobody signed in: no user (the system) sees no requests, like anonymous."""
    return user.pk if user is not None else None


def promotion_request_list(
    *, user: AnyUser, filters: RequestFilters = RequestFilters()
) -> QuerySet[PromotionRequest]:
    qs: QuerySet[PromotionRequest] = (
        permissions.visible(user, PromotionRequest.objects.all())
        .select_related("registered_model", "version", "requested_by")
        .annotate(
            approvals=Count(
                "reviews__reviewer", filter=Q(reviews__decision="approve"), distinct=True
            )
        )
    )
    if filters.model:
        qs = qs.filter(registered_model__name=filters.model)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.target:
        qs = qs.filter(Q(target_stage=filters.target) | Q(target_alias=filters.target))
    if filters.requested_by_me:
        qs = qs.filter(requested_by=_user_id(user))
    if filters.awaiting_my_review:
        qs = awaiting_review(user, qs)
    return qs


def awaiting_review(user: AnyUser, qs: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    """The reviewer's inbox: the pending requests promotions.review_refusal lets the user
    decide (they may approve the model's promotions and are barred by separation of duties
    neither as requester nor as a contributor of the version: content.barred, the rule the
    services apply), less those they have already reviewed. A fixed number of queries."""
    return (
        qs.filter(
            status=PromotionRequest.Status.PENDING,
            registered_model__in=permissions.models_with(user, Perm.APPROVE_PROMOTION).values("pk"),
        )
        .exclude(content.barred(_user_id(user)))
        .exclude(reviews__reviewer=_user_id(user))
    )


def promotion_request_get(*, user: AnyUser, pk: int) -> PromotionRequest:
    found = (
        permissions.visible(user, PromotionRequest.objects.all())
        .select_related(
            "registered_model",
            "version",
            "version__registered_model",
            "version__created_by",
            "requested_by",
            "applied_by",
            "replaced_version",
        )
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise NotFound(f"Promotion request #{pk} not found.", code="promotion_request_not_found")
    return found


@dataclass(frozen=True)
class AuditFilters:
    model: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_event_list(
    *, user: AnyUser, filters: AuditFilters = AuditFilters()
) -> QuerySet[AuditEvent]:
    qs = audit.events_visible(user)
    if filters.model:
        qs = qs.filter(registered_model_name=filters.model)
    if filters.actor:
        qs = qs.filter(actor_label=filters.actor)
    if filters.action:
        # "promotion." matches every promotion event; anything else matches exactly.
        qs = (
            qs.filter(action__startswith=filters.action)
            if filters.action.endswith(".")
            else qs.filter(action=filters.action)
        )
    if filters.since:
        qs = qs.filter(occurred_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(occurred_at__lt=filters.until)
    return qs
