"""The maturity scorecard's pages: the organisation dashboard, a team, a model (what is
missing and where to fix it), and the access page's "mark as reviewed" button.

Aggregates count only the models the signed-in user may view, computed live; trends come
from daily snapshots that count every model, so only users who may view the whole
organisation see them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.actors import Actor
from core.pages import page
from governance import access
from governance.maturity import scorecard, snapshots
from registry import selectors as registry_selectors

WORST_SHOWN = 50


def _trend(user: Any, team: int | None) -> dict[str, Any] | None:
    if not snapshots.may_see_trends(user):
        return None
    points = snapshots.trend(team=team)
    return {"points": points, "line": snapshots.sparkline(points)}


def _group_page(
    request: HttpRequest, card: scorecard.Scorecard, group: scorecard.GroupScore, team: int | None
) -> HttpResponse:
    return render(
        request,
        "governance/scorecard_group.html",
        {
            "card": card,
            "group": group,
            "team": team,
            "domains": group.domain_rows(),
            "metric_rows": [
                {"metric": m, "distribution": group.metrics[m.key]} for m in card.catalogue
            ],
            "teams": card.teams if team is None else [],
            "worst": card.models[:WORST_SHOWN],
            "trend": _trend(request.user, team),
        },
    )


@page
def scorecard_home(request: HttpRequest) -> HttpResponse:
    card = scorecard.scorecard_for(request.user)
    return _group_page(request, card, card.organisation, None)


@page
def scorecard_team(request: HttpRequest, team_id: int) -> HttpResponse:
    card = scorecard.scorecard_for(request.user, team=team_id)
    group = card.organisation
    group.team_id, group.name = team_id, scorecard.team_name(card, team_id)
    return _group_page(request, card, group, team_id)


@page
def model_scorecard(request: HttpRequest, name: str) -> HttpResponse:
    registered_model = registry_selectors.registered_model_get(
        user=request.user, name=name, details=False
    )
    card = scorecard.scorecard_for(request.user, registered_model=registered_model)
    model = card.models[0]
    answers = model.metrics
    domains = [
        {
            "title": row["title"],
            "distribution": row["distribution"],
            "answers": [m for m in answers if m.metric.domain == row["key"]],
        }
        for row in scorecard.GroupScore(team_id=None, name="", domains=model.domains).domain_rows()
    ]
    return render(
        request,
        "governance/scorecard_model.html",
        {"card": card, "model": model, "domains": domains, "registered_model": registered_model},
    )


# A POST-only page, typed (page's factory form returns its decorator untyped).
post_page: Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]] = page(
    methods=("POST",)
)


@post_page
def access_review(request: HttpRequest, name: str) -> HttpResponse:
    """The access page's "Mark access as reviewed" (managers of the model only)."""
    registered_model = registry_selectors.registered_model_get(
        user=request.user, name=name, details=False
    )
    access.access_review_record(
        actor=Actor.from_request(request), registered_model=registered_model
    )
    messages.success(request, f"Access to {registered_model.name} marked as reviewed.")
    return redirect("governance:model-access", name=registered_model.name)
