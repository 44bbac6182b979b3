"""The catalogue of maturity metrics: what each measures, what each bucket means, how it is
computed for many models at once, and where a user fixes it.

A metric answers every model it is given in one query (annotations, subqueries or a grouped
`values()`), never one query per model, so a scorecard costs the same number of queries for
one model or ten thousand. Apps register their metrics (cards registers the documentation
domain from its AppConfig.ready(), as governance imports no card).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from registry.models import ModelVersion, RegisteredModel

MISSING, PARTIAL, COMPLETE = 0, 1, 2
BUCKETS: tuple[int, ...] = (MISSING, PARTIAL, COMPLETE)
BUCKET_LABELS = {MISSING: "missing", PARTIAL: "partial", COMPLETE: "complete", None: "n/a"}

# (key, title), in the order pages and exports show them.
DOMAINS: tuple[tuple[str, str], ...] = (
    ("documentation", "Documentation"),
    ("lineage", "Lineage"),
    ("governance", "Governance"),
    ("operations", "Operations"),
    ("quality", "Quality"),
)
DOMAIN_KEYS = tuple(key for key, _ in DOMAINS)
DOMAIN_TITLES = dict(DOMAINS)

Bucket = int | None


@dataclass(frozen=True)
class ModelRow:
    """What the scorecard knows of one model before any metric runs (one query for all):
    its focus version is its production version (the highest number if several), else its
    newest live version, else None."""

    pk: int
    name: str
    team_id: int | None
    team_name: str
    focus_id: int | None
    focus_number: int | None
    focus_stage: str | None

    @property
    def in_production(self) -> bool:
        return self.focus_stage == ModelVersion.Stage.PRODUCTION


@dataclass(frozen=True)
class Context:
    """Handed to every metric: the models (by id), their focus versions (what a metric filters
    on in its one query: `version__in=ctx.focus_versions`) and the time the scorecard was
    taken."""

    now: datetime
    rows: dict[int, ModelRow]
    # the focus versions' ids, as a subquery bound as one parameter (core.aggregates.id_subquery)
    focus_versions: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_ids(self) -> list[int]:
        return list(self.rows)

    def per_model(self, default: Bucket) -> dict[int, Bucket]:
        """Every model with `default`, and None where it has no focus version (the metrics on
        a version do not apply to a model without one)."""
        return {pk: (None if row.focus_id is None else default) for pk, row in self.rows.items()}


Compute = Callable[[QuerySet[RegisteredModel], Context], dict[int, Bucket]]
FixUrl = Callable[[ModelRow], str]


@dataclass(frozen=True)
class Metric:
    key: str
    domain: str
    title: str
    # what each bucket this metric uses means (None: when it does not apply)
    buckets: dict[Bucket, str]
    compute: Compute
    fix_url: FixUrl
    fix_label: str = "Fix it"

    def __post_init__(self) -> None:
        if self.domain not in DOMAIN_KEYS:
            raise ImproperlyConfigured(f"Metric {self.key}: unknown domain {self.domain!r}.")
        if set(self.buckets) - {*BUCKETS, None}:
            raise ImproperlyConfigured(f"Metric {self.key}: buckets are 0, 1, 2 and None.")


_METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric to the catalogue (again with the same definition: nothing happens)."""
    known = _METRICS.get(metric.key)
    if known is not None and known != metric:
        raise ImproperlyConfigured(f"Another maturity metric is already called {metric.key}.")
    _METRICS[metric.key] = metric
    return metric


def metrics() -> list[Metric]:
    """Every registered metric, by domain (in DOMAINS order), then in registration order."""
    order = {key: i for i, key in enumerate(DOMAIN_KEYS)}
    return sorted(_METRICS.values(), key=lambda m: order[m.domain])


def get(key: str) -> Metric:
    return _METRICS[key]
