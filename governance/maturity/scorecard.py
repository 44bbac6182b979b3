"""The scorecard: every metric of the catalogue for many models, rolled up metric → domain →
model → team → organisation, keeping at every level how many metrics fell in each bucket
(0 missing, 1 partial, 2 complete, and n/a apart) and a score for ranking: the mean of the
applicable buckets divided by 2 (0 to 1; None when nothing applies).

One query lists the models with their focus versions, then each metric answers all of them in
its own query(ies): the count is the same for one model or ten thousand.

Aggregates count only the models the user may view (core.permissions.visible_models),
computed live per user; snapshots (governance.maturity.snapshots) count every live model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import permissions
from core.aggregates import id_subquery
from core.edge import MAX_WHOLE_NUMBER
from core.errors import NotFound
from core.permissions import AnyUser, Perm
from governance.maturity import metrics as _builtin  # noqa: F401  (registers the metrics)
from governance.maturity.catalogue import (
    BUCKET_LABELS,
    BUCKETS,
    COMPLETE,
    DOMAIN_KEYS,
    DOMAIN_TITLES,
    Bucket,
    Context,
    Metric,
    ModelRow,
    metrics,
)
from registry.models import ModelVersion, RegisteredModel

# The team id that stands for the models without a team ("No team").
NO_TEAM = 0
NO_TEAM_NAME = "No team"
# Keys of a distribution in JSON (API, export, snapshots), in bucket order.
DISTRIBUTION_KEYS = ("missing", "partial", "complete", "not_applicable")


@dataclass
class Distribution:
    """How many metric answers fell in each bucket (None: not applicable)."""

    counts: dict[Bucket, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0, None: 0})

    def add(self, bucket: Bucket, n: int = 1) -> None:
        self.counts[bucket] += n

    def merge(self, other: Distribution) -> None:
        for bucket, n in other.counts.items():
            self.counts[bucket] += n

    @property
    def applicable(self) -> int:
        return sum(self.counts[b] for b in BUCKETS)

    @property
    def total(self) -> int:
        return self.applicable + self.counts[None]

    @property
    def score(self) -> float | None:
        """Mean applicable bucket / 2, from 0 (all missing) to 1 (all complete)."""
        if not self.applicable:
            return None
        points = sum(b * self.counts[b] for b in BUCKETS)
        return round(points / (COMPLETE * self.applicable), 4)

    def _ordered(self) -> tuple[int, ...]:
        return (*(self.counts[b] for b in BUCKETS), self.counts[None])

    def as_dict(self) -> dict[str, int]:
        return dict(zip(DISTRIBUTION_KEYS, self._ordered(), strict=True))

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Distribution:
        dist = cls()
        for key, bucket in zip(DISTRIBUTION_KEYS, (*BUCKETS, None), strict=True):
            dist.counts[bucket] = int(data.get(key, 0))
        return dist

    def bars(self) -> list[dict[str, Any]]:
        """Each bucket's count, and where its bar starts and how wide it is (0-100), for the
        pages' proportional bars (drawn as SVG: no inline style under the CSP)."""
        total = self.total or 1
        out, start = [], 0.0
        for key, b in zip(DISTRIBUTION_KEYS, (*BUCKETS, None), strict=True):
            width = 100 * self.counts[b] / total
            out.append(
                {
                    "bucket": BUCKET_LABELS[b],
                    "key": key,
                    "count": self.counts[b],
                    "x": round(start, 2),
                    "width": round(width, 2),
                }
            )
            start += width
        return out


@dataclass(frozen=True)
class MetricScore:
    metric: Metric
    bucket: Bucket
    row: ModelRow

    @property
    def meaning(self) -> str:
        return self.metric.buckets.get(self.bucket, "")

    @property
    def label(self) -> str:
        return BUCKET_LABELS[self.bucket]

    @property
    def fix_url(self) -> str | None:
        """Where to fix it, when it applies and is not complete (worked out when asked: a
        scorecard of thousands of models shows only some)."""
        if self.bucket is None or self.bucket == COMPLETE:
            return None
        return self.metric.fix_url(self.row)


@dataclass
class ModelScore:
    row: ModelRow
    catalogue: list[Metric]
    # each metric's bucket, in catalogue order
    buckets: tuple[Bucket, ...]
    distribution: Distribution

    @property
    def score(self) -> float | None:
        return self.distribution.score

    @property
    def metrics(self) -> list[MetricScore]:
        return [
            MetricScore(metric=m, bucket=b, row=self.row)
            for m, b in zip(self.catalogue, self.buckets, strict=True)
        ]

    @property
    def domains(self) -> dict[str, Distribution]:
        out = {key: Distribution() for key in DOMAIN_KEYS}
        for metric, bucket in zip(self.catalogue, self.buckets, strict=True):
            out[metric.domain].add(bucket)
        return out

    @property
    def missing(self) -> list[MetricScore]:
        """What keeps the model from complete, worst first."""
        open_ = [m for m in self.metrics if m.bucket is not None and m.bucket != COMPLETE]
        return sorted(open_, key=lambda m: m.bucket or 0)


@dataclass
class GroupScore:
    """A team's or the organisation's roll-up."""

    team_id: int | None  # None: the organisation; NO_TEAM: models without a team
    name: str
    models: int = 0
    distribution: Distribution = field(default_factory=Distribution)
    domains: dict[str, Distribution] = field(
        default_factory=lambda: {key: Distribution() for key in DOMAIN_KEYS}
    )
    metrics: dict[str, Distribution] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        return self.distribution.score

    def domain_rows(self) -> list[dict[str, Any]]:
        return [
            {"key": key, "title": DOMAIN_TITLES[key], "distribution": dist, "score": dist.score}
            for key, dist in self.domains.items()
        ]


@dataclass
class Scorecard:
    taken_at: datetime
    catalogue: list[Metric]
    organisation: GroupScore
    teams: list[GroupScore]
    # worst first: lowest score, then name
    models: list[ModelScore]


def _worst_first(model: ModelScore) -> tuple[float, str]:
    return (2.0 if model.score is None else model.score, model.row.name)


def _first(pair: tuple[tuple[float, str], ModelScore]) -> tuple[float, str]:
    return pair[0]


def _focus_id() -> Coalesce:
    """The model's focus version: its production version (the highest number if several),
    else its newest live version. Two index walks per model (stage, then number)."""
    live = ModelVersion.objects.filter(registered_model=OuterRef("pk"), deleted_at__isnull=True)
    production = live.filter(stage=ModelVersion.Stage.PRODUCTION).order_by("-version")
    return Coalesce(
        Subquery(production.values("pk")[:1]),
        Subquery(live.order_by("-version").values("pk")[:1]),
    )


def with_focus(models: QuerySet[RegisteredModel]) -> QuerySet[Any]:
    """The models with their focus version's id."""
    return models.annotate(focus_id=_focus_id())


def compute(
    models: QuerySet[RegisteredModel],
    *,
    now: datetime | None = None,
    catalogue: list[Metric] | None = None,
) -> Scorecard:
    """The scorecard of `models` (live ones; the caller has restricted them to what its
    reader may see) under `catalogue` (default: every registered metric). Two queries for the
    models and their focus versions, then each metric's queries."""
    now = now or timezone.now()
    models = models.filter(deleted_at__isnull=True)
    annotated = with_focus(models)
    found = list(
        annotated.order_by().values_list("pk", "name", "team_id", "team__name", "focus_id")
    )
    focus_ids = [row[4] for row in found if row[4] is not None]
    focus = id_subquery(focus_ids)
    versions = {
        pk: (number, stage)
        for pk, number, stage in ModelVersion.objects.filter(pk__in=focus).values_list(
            "pk", "version", "stage"
        )
    }
    rows = {}
    for pk, name, team_id, team_name, focus_id in found:
        number, stage = versions.get(focus_id, (None, None))
        rows[pk] = ModelRow(
            pk=pk,
            name=name,
            team_id=team_id,
            team_name=team_name or "",
            focus_id=focus_id,
            focus_number=number,
            focus_stage=stage,
        )
    catalogue = metrics() if catalogue is None else catalogue
    answers: dict[str, dict[int, Bucket]] = {}
    if rows:
        ctx = Context(now=now, rows=rows, focus_versions=focus)
        for metric in catalogue:
            answers[metric.key] = metric.compute(models, ctx)
    return _roll_up(now, catalogue, rows, answers)


def _roll_up(
    now: datetime,
    catalogue: list[Metric],
    rows: dict[int, ModelRow],
    answers: dict[str, dict[int, Bucket]],
) -> Scorecard:
    """Counts per (metric, team, bucket), then domains and groups as sums of their metrics;
    column-wise over plain lists and tuples, so ten thousand models take a fraction of a
    second."""
    pks = list(rows)
    team_of = [NO_TEAM if r.team_id is None else r.team_id for r in rows.values()]
    columns = [[answers.get(m.key, {}).get(pk) for pk in pks] for m in catalogue]
    organisation = GroupScore(team_id=None, name="Organisation", models=len(rows))
    names = {NO_TEAM: NO_TEAM_NAME}
    for team, row in zip(team_of, rows.values(), strict=True):
        names.setdefault(team, row.team_name)
    teams = {
        team: GroupScore(team_id=team, name=names[team], models=n)
        for team, n in Counter(team_of).items()
    }
    for group in (organisation, *teams.values()):
        group.metrics = {m.key: Distribution() for m in catalogue}
    for metric, column in zip(catalogue, columns, strict=True):
        for (team, bucket), n in Counter(zip(team_of, column, strict=True)).items():
            for group in (organisation, teams[team]):
                group.metrics[metric.key].add(bucket, n)
                group.domains[metric.domain].add(bucket, n)
                group.distribution.add(bucket, n)
    per_model: Iterable[tuple[Bucket, ...]] = (
        zip(*columns, strict=True) if columns else [()] * len(pks)
    )
    scores = [
        ModelScore(
            row=row,
            catalogue=catalogue,
            buckets=buckets,
            distribution=Distribution(counts={b: buckets.count(b) for b in (0, 1, 2, None)}),
        )
        for row, buckets in zip(rows.values(), per_model, strict=True)
    ]
    ordered_teams = sorted(
        teams.values(),
        key=lambda t: (2.0 if t.score is None else t.score, t.team_id == NO_TEAM, t.name),
    )
    return Scorecard(
        taken_at=now,
        catalogue=catalogue,
        organisation=organisation,
        teams=ordered_teams,
        models=[m for _, m in sorted(((_worst_first(m), m) for m in scores), key=_first)],
    )


def scorecard_for(
    user: AnyUser,
    *,
    team: int | None = None,
    registered_model: RegisteredModel | None = None,
    now: datetime | None = None,
) -> Scorecard:
    """The scorecard of the live models `user` may view: all of them, one team's (`team` is a
    group id, or NO_TEAM for the models without a team) or one model's. A model the user may
    not view is a NotFound; so is a team of which the user sees no model (unless they see the
    whole organisation and the team exists)."""
    if team is not None and not 0 <= team <= MAX_WHOLE_NUMBER:
        # (a key no column holds: SQLite would overflow on the comparison)
        raise NotFound(f"Team {team} not found.", code="team_not_found")
    models = permissions.visible_models(user)
    if registered_model is not None:
        permissions.require(user, Perm.VIEW, registered_model)
        models = models.filter(pk=registered_model.pk)
    if team is not None:
        models = models.filter(team__isnull=True) if team == NO_TEAM else models.filter(team=team)
    card = compute(models, now=now)  # type: ignore[arg-type]  # the gate's rows are models
    if team is not None and team != NO_TEAM and not card.models:
        exists = permissions.has_global(user, Perm.VIEW) and Group.objects.filter(pk=team).exists()
        if not exists:
            raise NotFound(f"Team {team} not found.", code="team_not_found")
    return card


def team_name(card: Scorecard, team: int) -> str:
    """The team's name as the scorecard knows it (its group's, for a team without models)."""
    for group in card.teams:
        if group.team_id == team:
            return group.name
    if team == NO_TEAM:
        return NO_TEAM_NAME
    return Group.objects.filter(pk=team).values_list("name", flat=True).first() or str(team)


# --- Plain data, for the API, exports and snapshots ------------------------------------------


def distribution_data(dist: Distribution) -> dict[str, Any]:
    return {**dist.as_dict(), "score": dist.score}


def group_data(group: GroupScore, *, with_metrics: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "team_id": group.team_id,
        "name": group.name,
        "models": group.models,
        "score": group.score,
        "distribution": group.distribution.as_dict(),
        "domains": {key: distribution_data(dist) for key, dist in group.domains.items()},
    }
    if with_metrics:
        data["metrics"] = {key: distribution_data(dist) for key, dist in group.metrics.items()}
    return data


def model_data(model: ModelScore, *, with_metrics: bool = True) -> dict[str, Any]:
    row = model.row
    data: dict[str, Any] = {
        "name": row.name,
        "team_id": row.team_id,
        "team": row.team_name or None,
        "focus_version": row.focus_number,
        "focus_stage": row.focus_stage,
        "score": model.score,
        "distribution": model.distribution.as_dict(),
        "domains": {key: distribution_data(dist) for key, dist in model.domains.items()},
    }
    if with_metrics:
        data["metrics"] = [
            {
                "key": m.metric.key,
                "domain": m.metric.domain,
                "title": m.metric.title,
                "bucket": m.bucket,
                "label": m.label,
                "meaning": m.meaning,
                "fix_url": m.fix_url,
            }
            for m in model.metrics
        ]
    return data


def catalogue_data(catalogue: Iterable[Metric]) -> list[dict[str, Any]]:
    return [
        {
            "key": m.key,
            "domain": m.domain,
            "title": m.title,
            "buckets": [
                {"bucket": bucket, "label": BUCKET_LABELS[bucket], "meaning": meaning}
                for bucket, meaning in m.buckets.items()
            ],
        }
        for m in catalogue
    ]


EXPORT_COLUMNS = (
    "model",
    "team",
    "focus_version",
    "focus_stage",
    "domain",
    "metric",
    "title",
    "bucket",
    "label",
    "meaning",
)


def export_rows(card: Scorecard) -> Iterator[dict[str, Any]]:
    """One row per model × metric, worst models first."""
    for model in card.models:
        row = model.row
        for metric, bucket in zip(card.catalogue, model.buckets, strict=True):
            yield {
                "model": row.name,
                "team": row.team_name or NO_TEAM_NAME,
                "focus_version": row.focus_number,
                "focus_stage": row.focus_stage,
                "domain": metric.domain,
                "metric": metric.key,
                "title": metric.title,
                "bucket": bucket,
                "label": BUCKET_LABELS[bucket],
                "meaning": metric.buckets.get(bucket, ""),
            }
