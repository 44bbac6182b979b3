"""Daily maturity snapshots and the trends drawn from them.

A snapshot counts every live model (it is taken by the system, for nobody in particular), so
trends are shown only to users who may see the whole organisation
(core.permissions.has_global(user, Perm.VIEW)); everyone else gets their live scorecard,
which counts only the models they may view, without a trend.

Snapshots are bookkeeping derived from the registry, not a governed change: they write no
audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import permissions
from core.permissions import AnyUser, Perm
from governance.maturity import scorecard
from governance.models import MaturitySnapshot
from registry.models import RegisteredModel

TREND_DAYS = 90


def may_see_trends(user: AnyUser) -> bool:
    """Trends count every model: only for those who may view the whole organisation."""
    return permissions.has_global(user, Perm.VIEW)


@transaction.atomic
def maturity_snapshot_take(*, now: datetime | None = None) -> list[MaturitySnapshot]:
    """Record today's scorecard of the organisation and of each team with models, over every
    live model. Idempotent per day: a second run the same day replaces that day's rows (so
    there is one row per team and day, never two). A run that loses a race with a concurrent
    one keeps the other's rows."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    card = scorecard.compute(RegisteredModel.objects.all(), now=now)
    no_team = next((t for t in card.teams if t.team_id == scorecard.NO_TEAM), None)
    organisation = scorecard.group_data(card.organisation)
    organisation["no_team"] = None if no_team is None else scorecard.group_data(no_team)
    rows = [MaturitySnapshot(taken_on=today, team=None, taken_at=now, data=organisation)]
    rows += [
        MaturitySnapshot(
            taken_on=today, team_id=team.team_id, taken_at=now, data=scorecard.group_data(team)
        )
        for team in card.teams
        if team.team_id != scorecard.NO_TEAM
    ]
    try:
        with transaction.atomic():
            MaturitySnapshot.objects.filter(taken_on=today).delete()
            return MaturitySnapshot.objects.bulk_create(rows)
    except IntegrityError:  # a concurrent run wrote the day's rows first: keep those
        return list(MaturitySnapshot.objects.filter(taken_on=today))


@dataclass(frozen=True)
class TrendPoint:
    taken_on: date
    models: int
    score: float | None
    distribution: dict[str, int]
    domains: dict[str, float | None]


def _point(taken_on: date, data: dict[str, Any]) -> TrendPoint:
    return TrendPoint(
        taken_on=taken_on,
        models=int(data.get("models", 0)),
        score=data.get("score"),
        distribution=scorecard.Distribution.from_dict(data.get("distribution", {})).as_dict(),
        domains={key: (d or {}).get("score") for key, d in data.get("domains", {}).items()},
    )


def trend(*, team: int | None = None, days: int = TREND_DAYS) -> list[TrendPoint]:
    """The organisation's (or a team's; scorecard.NO_TEAM: the models without a team) daily
    snapshots of the last `days` days, oldest first. One query. Callers check
    may_see_trends first."""
    since = timezone.localdate() - timedelta(days=days)
    rows = MaturitySnapshot.objects.filter(taken_on__gte=since).order_by("taken_on")
    if team is None or team == scorecard.NO_TEAM:
        rows = rows.filter(team__isnull=True)
    else:
        rows = rows.filter(team_id=team)
    points = []
    for taken_on, data in rows.values_list("taken_on", "data"):
        if team == scorecard.NO_TEAM:
            data = data.get("no_team")
            if not data:
                continue
        points.append(_point(taken_on, data))
    return points


def sparkline(points: list[TrendPoint], *, width: int = 320, height: int = 60) -> dict[str, Any]:
    """An SVG polyline of the scores (0 at the bottom, 1 at the top), built here so the page
    needs no script: {"points": "x,y ...", "end": (x, y) of the newest, "width", "height",
    "first", "last"}."""
    scored = [p for p in points if p.score is not None]
    if not scored:
        return {"points": "", "width": width, "height": height, "first": None, "last": None}
    pad = 4
    step = (width - 2 * pad) / max(len(scored) - 1, 1)
    xy = [
        (round(pad + i * step, 1), round(pad + (1 - (p.score or 0)) * (height - 2 * pad), 1))
        for i, p in enumerate(scored)
    ]
    return {
        "points": " ".join(f"{x},{y}" for x, y in xy),
        "end": xy[-1],
        "width": width,
        "height": height,
        "first": scored[0],
        "last": scored[-1],
    }
