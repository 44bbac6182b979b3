"""Bulk lineage registration: one idempotent call records a training run with its code
reference, datasets (with their roles), features and feature sources, and links the model
versions it produced, everything named by natural keys.

Natural keys: a feature source by name; a feature by (source name, feature name); a dataset
by (name, version); a code reference by (repository, commit, path); a run by run_id; a
version by (model name, version number).

Lineage records are immutable once written: a record that exists is reused as it is, never
changed. When the payload describes an existing record differently (another kind, URI,
digest, dtype, description, feature set, code reference, run attribute) the whole call is
refused with a 409 `lineage_mismatch` naming the record and the field, and nothing is
written. Attributes the payload leaves out are not compared. What may be added is only what
is missing: new records (through the single-record services, so permissions, validation and
audit events are theirs), dataset links of an existing run (audited as
`training_run.datasets_linked`; links are never removed), and the training run of a version
that has none (through `version_update`, so a sealed version refuses it). Repeating a call
writes no row and no audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError, transaction
from django.db.models import Model, Q

from core import audit, permissions
from core.actors import Actor
from core.errors import Conflict, NotFound, ValidationFailed
from core.permissions import Perm
from registry import selectors, validation
from registry.governed import governor
from registry.models import (
    CodeRef,
    Dataset,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
    TrainingRunDataset,
)
from registry.services.common import UNSET, insert_or_conflict
from registry.services.lineage import (
    code_ref_create,
    dataset_create,
    feature_source_create,
    logical_feature_create,
    training_run_create,
)
from registry.services.versions import version_update

logger = logging.getLogger(__name__)

# How much one call may name: a call is one transaction, and its locks are held until it ends.
MAX_FEATURE_SOURCES = 100
MAX_DATASETS = 100
MAX_FEATURES = 1000  # feature entries over all datasets
MAX_VERSIONS = 100

# A concurrent call (or a single-record endpoint) may insert a record between our lookup and
# our insert: the unique constraint refuses ours, the create service turns that into one of
# these 409s, and the whole registration is tried again in a new transaction, which finds
# the record. Two waits on each other's uncommitted rows end in a PostgreSQL deadlock error;
# that is retried too.
_RACE_CODES = frozenset(
    {
        "feature_source_exists",
        "feature_exists",
        "dataset_exists",
        "code_ref_exists",
        "training_run_exists",
        "dataset_link_exists",
    }
)
_RETRIED_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
_ATTEMPTS = 3

MISMATCH = "lineage_mismatch"


# --- What the caller gives ----------------------------------------------------------------
# Attributes left at UNSET are not given: not compared with an existing record, and the
# create service's default for a new one.


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str = UNSET
    uri: str = UNSET
    description: str = UNSET


@dataclass(frozen=True)
class FeatureSpec:
    source: str
    name: str
    dtype: str = UNSET
    description: str = UNSET


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    version: str = "1"
    role: str = TrainingRunDataset.Role.TRAINING
    uri: str = UNSET
    digest: str = UNSET
    description: str = UNSET
    # None: not given (an existing dataset keeps its features, a new one has none).
    features: Sequence[FeatureSpec] | None = None


@dataclass(frozen=True)
class CodeRefSpec:
    repository: str
    commit: str
    path: str = ""


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    name: str = UNSET
    params: dict[str, Any] = UNSET
    status: str = UNSET
    started_at: datetime | None = UNSET
    ended_at: datetime | None = UNSET


@dataclass(frozen=True)
class VersionSpec:
    name: str
    version: int


# --- What the call did --------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRecord:
    id: int
    name: str
    created: bool


@dataclass(frozen=True)
class FeatureRecord:
    id: int
    source: str
    name: str
    created: bool


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset entry of the payload: `created` says whether this call recorded the
    dataset, `linked` whether it linked it to the run in this role."""

    id: int
    name: str
    version: str
    role: str
    created: bool
    linked: bool


@dataclass(frozen=True)
class CodeRefRecord:
    id: int
    repository: str
    commit: str
    path: str
    created: bool


@dataclass(frozen=True)
class RunRecord:
    id: int
    run_id: str
    created: bool


@dataclass(frozen=True)
class VersionRecord:
    """A version is never created here; `linked` says whether this call set its run."""

    id: int
    name: str
    version: int
    linked: bool

    @property
    def created(self) -> bool:
        return False


@dataclass(frozen=True)
class Registration:
    training_run: RunRecord
    code_ref: CodeRefRecord | None
    feature_sources: list[SourceRecord]
    features: list[FeatureRecord]
    datasets: list[DatasetRecord]
    model_versions: list[VersionRecord]

    def _kinds(self) -> dict[str, list[Any]]:
        return {
            "feature_source": self.feature_sources,
            "feature": self.features,
            "dataset": _unique_by_id(self.datasets),
            "code_ref": [self.code_ref] if self.code_ref else [],
            "training_run": [self.training_run],
        }

    @property
    def created(self) -> dict[str, list[int]]:
        """Ids of the records this call created, per kind."""
        return {k: [r.id for r in rows if r.created] for k, rows in self._kinds().items()}

    @property
    def existing(self) -> dict[str, list[int]]:
        """Ids of the records that existed and were reused, per kind."""
        return {k: [r.id for r in rows if not r.created] for k, rows in self._kinds().items()}

    @property
    def linked_versions(self) -> list[int]:
        return [v.id for v in self.model_versions if v.linked]

    @property
    def changed(self) -> bool:
        """Whether the call wrote anything: a record, a dataset link or a version's run."""
        return (
            any(self.created.values())
            or any(d.linked for d in self.datasets)
            or bool(self.linked_versions)
        )


def _unique_by_id(rows: Iterable[DatasetRecord]) -> list[DatasetRecord]:
    seen: dict[int, DatasetRecord] = {}
    for row in rows:
        seen.setdefault(row.id, row)
    return list(seen.values())


# --- The service ----------------------------------------------------------------------------


def lineage_register(
    *,
    actor: Actor,
    run: RunSpec,
    code_ref: CodeRefSpec | None = UNSET,
    feature_sources: Sequence[SourceSpec] = (),
    datasets: Sequence[DatasetSpec] = (),
    model_versions: Sequence[VersionSpec] = (),
) -> Registration:
    """Register a training run and its lineage by natural keys, in one transaction: records
    that exist are reused unchanged (a differing attribute is a 409 `lineage_mismatch` and
    nothing is written), missing ones are created through the single-record services, dataset
    links are added (never removed) and each named version gets the run unless it has one
    (another run: `lineage_mismatch`; a sealed version: `version_sealed`). Idempotent: a
    repeat writes nothing. `code_ref` UNSET means not given; None means the run has none.

    Needs the global `add_trainingrun` permission, `add_*` for each kind it creates, and
    change on every model whose versions it names. Records and models the actor may not see
    are answered like missing ones (a version of an invisible model: 404).

    Not decorated with @transaction.atomic: called outside a transaction (from an edge), a
    registration that lost a race with a concurrent one is run again in a new transaction;
    inside the caller's transaction it runs once, in a savepoint."""
    permissions.require_global(actor.user, "add_trainingrun", "record training runs")
    plan = _Plan.build(run, code_ref, feature_sources, datasets, model_versions)
    attempts = 1 if transaction.get_connection().in_atomic_block else _ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return _register(actor, plan)
        except Conflict as error:
            if error.code not in _RACE_CODES or attempt == attempts:
                raise
            logger.info("lineage_register %s: lost a race (%s), retrying", run.run_id, error.code)
        except OperationalError as error:
            state = getattr(error.__cause__, "sqlstate", None)
            if state not in _RETRIED_SQLSTATES or attempt == attempts:
                raise
            logger.info("lineage_register %s: %s, retrying", run.run_id, state)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _mismatch(message: str, *, payload_field: str, record: dict[str, Any], attr: str) -> Conflict:
    return Conflict(
        f"{message} Lineage records are not changed once written: register a new one "
        "(another name or version) instead.",
        code=MISMATCH,
        field=payload_field,
        extra={"record": record, "field": attr},
    )


def _differs(spec: Any, row: Model, attrs: Iterable[str]) -> str | None:
    """The first attribute the spec gives and the row holds differently."""
    for attr in attrs:
        given = getattr(spec, attr)
        if given is not UNSET and given != getattr(row, attr):
            return attr
    return None


def _hidden(actor: Actor, model: type[Model], rows: Iterable[Model]) -> set[int]:
    """Ids among `rows` the actor may not see (the gate's lineage rule). No query for a
    role's view grant (the whole catalogue) or without rows."""
    wanted = {row.pk for row in rows}
    if not wanted or permissions.has_global(actor.user, Perm.VIEW):
        return set()
    seen = permissions.visible_lineage(
        actor.user, model._default_manager.filter(pk__in=wanted)
    ).values_list("pk", flat=True)
    return wanted - set(seen)


def _any_of(conditions: Iterable[Q]) -> Q:
    return reduce(or_, conditions, Q(pk__in=[]))


@dataclass
class _Plan:
    """The payload checked and de-duplicated, keyed by natural key (no query)."""

    run: RunSpec
    code_ref: CodeRefSpec | None
    sources: dict[str, SourceSpec]
    features: dict[tuple[str, str], FeatureSpec]
    datasets: dict[tuple[str, str], DatasetSpec]
    entries: list[DatasetSpec]  # the payload's dataset entries, in order
    versions: list[tuple[str, int]]
    # Feature keys per dataset key (only datasets whose features the payload gives).
    dataset_features: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        run: RunSpec,
        code_ref: CodeRefSpec | None,
        feature_sources: Sequence[SourceSpec],
        datasets: Sequence[DatasetSpec],
        model_versions: Sequence[VersionSpec],
    ) -> _Plan:
        too_many = [
            (len(feature_sources), MAX_FEATURE_SOURCES, "feature_sources", "feature sources"),
            (len(datasets), MAX_DATASETS, "datasets", "datasets"),
            (sum(len(d.features or ()) for d in datasets), MAX_FEATURES, "datasets", "features"),
            (len(model_versions), MAX_VERSIONS, "model_versions", "model versions"),
        ]
        for count, limit, payload_field, what in too_many:
            if count > limit:
                raise ValidationFailed(
                    f"At most {limit} {what} per call ({count} given).",
                    code="too_many",
                    field=payload_field,
                )
        if not isinstance(run.run_id, str) or not run.run_id:
            raise ValidationFailed("run_id is required.", field="run")
        sources: dict[str, SourceSpec] = {}
        for source in feature_sources:
            validation.name(source.name, field="feature_sources", what="A feature source name")
            _same_twice(sources, source.name, source, f"Feature source '{source.name}'")
        plan = cls(run, code_ref, sources, {}, {}, list(datasets), [])
        roles: set[tuple[str, str, str]] = set()
        for spec in datasets:
            validation.name(spec.name, field="datasets", what="A dataset name")
            validation.text(spec.version, field="datasets", max_length=128)
            if spec.role not in TrainingRunDataset.Role.values:
                raise ValidationFailed(
                    f"A dataset role is one of {', '.join(TrainingRunDataset.Role.values)}.",
                    field="datasets",
                )
            key = (spec.name, spec.version)
            if (*key, spec.role) in roles:
                raise ValidationFailed(
                    f"Dataset '{spec.name}' version '{spec.version}' is listed twice with the "
                    f"role {spec.role}.",
                    code="duplicate_record",
                    field="datasets",
                )
            roles.add((*key, spec.role))
            wanted_features: set[tuple[str, str]] | None = None
            if spec.features is not None:
                wanted_features = set()
                for feature in spec.features:
                    validation.name(feature.source, field="datasets", what="A source name")
                    validation.name(feature.name, field="datasets", what="A feature name")
                    fkey = (feature.source, feature.name)
                    _same_twice(
                        plan.features,
                        fkey,
                        feature,
                        f"Feature '{feature.name}' of source '{feature.source}'",
                    )
                    wanted_features.add(fkey)
                plan.dataset_features.setdefault(key, wanted_features)
            # A dataset listed again (in another role) repeats the same attributes.
            first = plan.datasets.setdefault(key, spec)
            if first is not spec and (
                (spec.uri, spec.digest, spec.description)
                != (first.uri, first.digest, first.description)
                or plan.dataset_features.get(key) != wanted_features
            ):
                raise ValidationFailed(
                    f"Dataset '{spec.name}' version '{spec.version}' is listed twice with "
                    "different attributes.",
                    code="duplicate_record",
                    field="datasets",
                )
        seen_versions: set[tuple[str, int]] = set()
        for version in model_versions:
            if (
                not isinstance(version.name, str)
                or isinstance(version.version, bool)
                or not isinstance(version.version, int)
                or version.version < 1
            ):
                raise ValidationFailed(
                    "A model version is a model name and a version number from 1.",
                    field="model_versions",
                )
            vkey = (version.name, version.version)
            if vkey not in seen_versions:
                seen_versions.add(vkey)
                plan.versions.append(vkey)
        return plan

    def source_names(self) -> set[str]:
        return set(self.sources) | {source for source, _ in self.features}


def _same_twice(seen: dict[Any, Any], key: Any, spec: Any, label: str) -> None:
    first = seen.setdefault(key, spec)
    if first != spec:
        raise ValidationFailed(
            f"{label} is listed twice with different attributes.",
            code="duplicate_record",
            field="feature_sources" if isinstance(spec, SourceSpec) else "datasets",
        )


def _register(actor: Actor, plan: _Plan) -> Registration:
    # Locks first, in one order (the versions by id, then the run), so concurrent
    # registrations of the same versions or run queue here and then read what the first one
    # committed: every lookup comes after them (a run looked up before waiting for a version
    # could be missing still, and the version already linked to it).
    versions = _locked_versions(actor, plan.versions)
    run = _locked_run(actor, plan.run.run_id)
    sources = _existing_sources(actor, plan)
    features = _existing_features(actor, plan, sources)
    datasets = _existing_datasets(actor, plan)
    ref = _existing_code_ref(actor, plan.code_ref)
    links = _check_run(plan, run, ref)
    _check_versions(versions, run)

    # Writes: nothing above wrote a row.
    created: set[tuple[str, Any]] = set()
    for name in sorted(plan.sources):
        if name not in sources:
            spec = plan.sources[name]
            sources[name] = feature_source_create(actor=actor, **_given(spec))
            created.add(("source", name))
    for fkey in sorted(plan.features):
        if fkey not in features:
            spec_f = plan.features[fkey]
            features[fkey] = logical_feature_create(
                actor=actor,
                source=sources[spec_f.source],
                **_given(spec_f, exclude=("source",)),
            )
            created.add(("feature", fkey))
    for dkey in sorted(plan.datasets):
        if dkey not in datasets:
            spec_d = plan.datasets[dkey]
            wanted = sorted(plan.dataset_features.get(dkey, ()))
            datasets[dkey] = dataset_create(
                actor=actor,
                features=[features[f] for f in wanted],
                **_given(spec_d, exclude=("features", "role")),
            )
            created.add(("dataset", dkey))
    if isinstance(plan.code_ref, CodeRefSpec) and ref is None:
        ref = code_ref_create(actor=actor, **_given(plan.code_ref))
        created.add(("code_ref", None))
    wanted_links = [(datasets[(d.name, d.version)], d.role) for d in plan.entries]
    added_links: set[tuple[int, str]] = set()
    if run is None:
        run = training_run_create(
            actor=actor, code_ref=ref, datasets=wanted_links, **_given(plan.run)
        )
        created.add(("run", None))
        added_links = {(d.pk, role) for d, role in wanted_links}
    else:
        added_links = _link_datasets(actor, run, wanted_links, links)
    linked = set()
    for version in versions.values():
        if version.training_run_id is None:
            version_update(actor=actor, version=version, training_run=run)
            linked.add(version.pk)

    return Registration(
        training_run=RunRecord(run.pk, run.run_id, ("run", None) in created),
        code_ref=None
        if ref is None
        else CodeRefRecord(
            ref.pk, ref.repository, ref.commit, ref.path, ("code_ref", None) in created
        ),
        feature_sources=[
            SourceRecord(sources[n].pk, n, ("source", n) in created) for n in sorted(sources)
        ],
        features=[
            FeatureRecord(features[k].pk, k[0], k[1], ("feature", k) in created)
            for k in sorted(features)
        ],
        datasets=[
            DatasetRecord(
                id=datasets[(d.name, d.version)].pk,
                name=d.name,
                version=d.version,
                role=d.role,
                created=("dataset", (d.name, d.version)) in created,
                linked=(datasets[(d.name, d.version)].pk, d.role) in added_links,
            )
            for d in plan.entries
        ],
        model_versions=[
            VersionRecord(versions[k].pk, k[0], k[1], versions[k].pk in linked)
            for k in plan.versions
        ],
    )


def _given(spec: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The spec's given attributes, as keyword arguments of a create service."""
    return {
        name: value
        for name, value in vars(spec).items()
        if value is not UNSET and name not in exclude
    }


# --- Lookups (each one query, whatever the payload's size) ----------------------------------


def _refuse_hidden(
    actor: Actor, model: type[Model], found: dict[Any, Any], payload_field: str, label: Any
) -> None:
    hidden = _hidden(actor, model, found.values())
    for key, row in sorted(found.items(), key=lambda kv: str(kv[0])):
        if row.pk in hidden:
            # Linking a record makes it readable by whoever sees the run: a record the actor
            # may not see is refused like a missing one (registry.services.lineage).
            raise ValidationFailed(f"{label(key)} not found.", field=payload_field)


def _locked_run(actor: Actor, run_id: str) -> TrainingRun | None:
    run = TrainingRun.objects.select_for_update().filter(run_id=run_id).first()
    if run is not None and _hidden(actor, TrainingRun, [run]):
        raise ValidationFailed(f"Training run '{run_id}' not found.", field="run")
    return run


def _locked_versions(
    actor: Actor, wanted: list[tuple[str, int]]
) -> dict[tuple[str, int], ModelVersion]:
    """The named versions, locked (by id), each of a model the actor may change: a model or
    version the actor may not see is a 404, one they may see but not change a 403."""
    if not wanted:
        return {}
    per_model: dict[str, list[int]] = {}
    for name, number in wanted:
        per_model.setdefault(name, []).append(number)
    names = set(per_model)
    models = {
        m.name: m
        for m in permissions.visible(actor.user, RegisteredModel.objects.filter(name__in=names))
    }
    for name in sorted(names):
        if name not in models:
            # The selector's 404 (and, for a model that exists unseen, its audited refusal).
            selectors.registered_model_get(
                user=actor.user or AnonymousUser(), name=name, details=False
            )
        permissions.require(actor.user, Perm.CHANGE, models[name])
    rows = (
        permissions.visible(
            actor.user,
            ModelVersion.objects.filter(
                _any_of(
                    Q(registered_model=models[name], version__in=numbers)
                    for name, numbers in sorted(per_model.items())
                )
            ),
        )
        .select_related("registered_model")
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    found = {(v.registered_model.name, v.version): v for v in rows}
    for key in wanted:
        if key not in found:
            raise NotFound(f"Version {key[1]} of '{key[0]}' not found.", code="version_not_found")
    return found


def _existing_sources(actor: Actor, plan: _Plan) -> dict[str, FeatureSource]:
    names = plan.source_names()
    found = {s.name: s for s in FeatureSource.objects.filter(name__in=names)} if names else {}
    hidden = _hidden(actor, FeatureSource, found.values())
    for name in sorted(names):
        if name in plan.sources and name in found and found[name].pk in hidden:
            raise ValidationFailed(f"Feature source '{name}' not found.", field="feature_sources")
        # Unlisted: one answer whether it is missing or hidden.
        if name not in plan.sources and (name not in found or found[name].pk in hidden):
            raise ValidationFailed(
                f"Feature source '{name}' not found: list it in feature_sources to record it.",
                code="feature_source_not_found",
                field="datasets",
            )
    for name, spec in sorted(plan.sources.items()):
        if name in found:
            attr = _differs(spec, found[name], ("kind", "uri", "description"))
            if attr:
                raise _mismatch(
                    f"Feature source '{name}' is already recorded with another {attr}.",
                    payload_field="feature_sources",
                    record={"kind": "feature_source", "name": name},
                    attr=attr,
                )
    return found


def _existing_features(
    actor: Actor, plan: _Plan, sources: dict[str, FeatureSource]
) -> dict[tuple[str, str], LogicalFeature]:
    per_source: dict[str, list[str]] = {}
    for source, name in plan.features:
        if source in sources:
            per_source.setdefault(source, []).append(name)
    rows = (
        LogicalFeature.objects.filter(
            _any_of(Q(source=sources[s], name__in=names) for s, names in sorted(per_source.items()))
        ).select_related("source")
        if per_source
        else []
    )
    found = {(f.source.name, f.name): f for f in rows}
    _refuse_hidden(
        actor, LogicalFeature, found, "datasets", lambda k: f"Feature '{k[1]}' of '{k[0]}'"
    )
    for key, feature in sorted(found.items()):
        attr = _differs(plan.features[key], feature, ("dtype", "description"))
        if attr:
            raise _mismatch(
                f"Feature '{key[1]}' of source '{key[0]}' is already recorded with another {attr}.",
                payload_field="datasets",
                record={"kind": "feature", "source": key[0], "name": key[1]},
                attr=attr,
            )
    return found


def _existing_datasets(actor: Actor, plan: _Plan) -> dict[tuple[str, str], Dataset]:
    per_name: dict[str, list[str]] = {}
    for name, version in plan.datasets:
        per_name.setdefault(name, []).append(version)
    rows = (
        Dataset.objects.filter(
            _any_of(Q(name=n, version__in=vs) for n, vs in sorted(per_name.items()))
        )
        if per_name
        else []
    )
    found = {(d.name, d.version): d for d in rows}
    _refuse_hidden(
        actor, Dataset, found, "datasets", lambda k: f"Dataset '{k[0]}' version '{k[1]}'"
    )
    compared = [found[k].pk for k in plan.dataset_features if k in found]
    recorded: dict[int, set[tuple[str, str]]] = {pk: set() for pk in compared}
    if compared:
        through = Dataset.features.through.objects.filter(dataset_id__in=compared)
        for dataset_id, source, name in through.values_list(
            "dataset_id", "logicalfeature__source__name", "logicalfeature__name"
        ):
            recorded[dataset_id].add((source, name))
    for key, dataset in sorted(found.items()):
        record = {"kind": "dataset", "name": key[0], "version": key[1]}
        label = f"Dataset '{key[0]}' version '{key[1]}'"
        attr = _differs(plan.datasets[key], dataset, ("uri", "digest", "description"))
        if attr:
            raise _mismatch(
                f"{label} is already recorded with another {attr}.",
                payload_field="datasets",
                record=record,
                attr=attr,
            )
        if key in plan.dataset_features and recorded[dataset.pk] != plan.dataset_features[key]:
            raise _mismatch(
                f"{label} is already recorded with other features.",
                payload_field="datasets",
                record=record,
                attr="features",
            )
    return found


def _existing_code_ref(actor: Actor, spec: CodeRefSpec | None) -> CodeRef | None:
    if not isinstance(spec, CodeRefSpec):  # not given, or the run has none
        return None
    ref = CodeRef.objects.filter(
        repository=spec.repository, commit=spec.commit, path=spec.path
    ).first()
    if ref is not None and _hidden(actor, CodeRef, [ref]):
        raise ValidationFailed(
            f"Code reference {spec.repository}@{spec.commit} not found.", field="code_ref"
        )
    return ref


def _check_run(plan: _Plan, run: TrainingRun | None, ref: CodeRef | None) -> set[tuple[int, str]]:
    """An existing run must match what the payload gives; returns its dataset links."""
    if run is None:
        return set()
    record = {"kind": "training_run", "run_id": run.run_id}
    label = f"Training run '{run.run_id}'"
    given = None if ref is None else ref.pk
    if plan.code_ref is not UNSET and (
        given != run.code_ref_id or (plan.code_ref is not None and ref is None)
    ):
        raise _mismatch(
            f"{label} is already recorded with another code reference.",
            payload_field="code_ref",
            record=record,
            attr="code_ref",
        )
    spec = plan.run
    if spec.params is not UNSET:
        spec = RunSpec(**{**vars(spec), "params": validation.params(spec.params)})
    attr = _differs(spec, run, ("name", "params", "status", "started_at", "ended_at"))
    if attr:
        raise _mismatch(
            f"{label} is already recorded with another {attr}.",
            payload_field="run",
            record=record,
            attr=attr,
        )
    return set(
        TrainingRunDataset.objects.filter(training_run=run).values_list("dataset_id", "role")
    )


def _check_versions(versions: dict[tuple[str, int], ModelVersion], run: TrainingRun | None) -> None:
    for (name, number), version in sorted(versions.items()):
        if version.training_run_id is not None and (
            run is None or version.training_run_id != run.pk
        ):
            raise _mismatch(
                f"Version {number} of '{name}' is already linked to another training run.",
                payload_field="model_versions",
                record={"kind": "model_version", "name": name, "version": number},
                attr="training_run",
            )


def _link_datasets(
    actor: Actor,
    run: TrainingRun,
    wanted: list[tuple[Dataset, str]],
    present: set[tuple[int, str]],
) -> set[tuple[int, str]]:
    """Add the dataset links an existing run lacks (never remove one); one audit event."""
    missing = sorted({(d.pk, role) for d, role in wanted} - present)
    if not missing:
        return set()
    # What a sealed version was trained on is part of what its approvers saw: a run that
    # trained one keeps its datasets (the version rows are locked so none seals meanwhile).
    for version in ModelVersion.objects.select_for_update().filter(
        training_run=run, deleted_at__isnull=True
    ):
        governor().require_unsealed(version, "training datasets")
    insert_or_conflict(
        lambda: TrainingRunDataset.objects.bulk_create(
            TrainingRunDataset(training_run=run, dataset_id=pk, role=role) for pk, role in missing
        ),
        f"Training run '{run.run_id}' was linked to these datasets at the same time; retry.",
        "dataset_link_exists",
    )
    audit.record(
        actor=actor,
        action="training_run.datasets_linked",
        target=run,
        details={"run_id": run.run_id, "datasets": [list(link) for link in missing]},
    )
    return set(missing)
