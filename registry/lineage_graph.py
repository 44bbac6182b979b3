"""The lineage graph as the signed-in user may see it: walks from any record upstream (what it
was made from) and downstream (what was made from it), and impact analysis (which versions,
serving how, depend on a record, and through which path).

The chain is typed and of fixed depth (feature source → logical feature → dataset → training
run ← code ref; run → model version → deployment), so a walk is at most five levels each way
and every level is one query per kind of record on the frontier, whatever the graph's size.
Every query carries the permission filter of the records it reaches (core.permissions:
`visible` for versions and deployments, `visible_lineage` for catalogue records), so a record
the user may not see is never reached, and nothing beyond it either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model, QuerySet
from django.urls import reverse

from core import permissions
from core.aggregates import id_subquery
from core.edge import is_whole_number
from core.errors import NotFound, ValidationFailed
from core.permissions import AnyUser, Perm
from registry.governed import governor
from registry.models import (
    Alias,
    CodeRef,
    Dataset,
    Deployment,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    TrainingRun,
    TrainingRunDataset,
)

# The kinds of record, in the order of the chain; COLUMN places each in the drawing.
KINDS = ("source", "feature", "dataset", "code", "run", "version", "deployment")
COLUMN = {"source": 0, "feature": 1, "dataset": 2, "code": 2, "run": 3, "version": 4}
COLUMN["deployment"] = 5
TITLES = {
    "source": ("feature source", "feature sources"),
    "feature": ("feature", "features"),
    "dataset": ("dataset", "datasets"),
    "code": ("code reference", "code references"),
    "run": ("training run", "training runs"),
    "version": ("model version", "model versions"),
    "deployment": ("deployment", "deployments"),
}
ROWS: dict[str, type[Model]] = {
    "source": FeatureSource,
    "feature": LogicalFeature,
    "dataset": Dataset,
    "code": CodeRef,
    "run": TrainingRun,
    "version": ModelVersion,
    "deployment": Deployment,
}
# The longest chain (source → feature → dataset → run → version → deployment) is five hops.
MAX_DEPTH = 5
# A walk stops widening past this many records (the answer says it was cut short).
MAX_NODES = 5000
# Where impact analysis may start: records other records are made from.
IMPACT_KINDS = ("source", "feature", "dataset", "code", "run")

Key = tuple[str, int]
_FeatureDatasets = Dataset.features.through


@dataclass
class Node:
    kind: str
    pk: int
    label: str = ""
    detail: str = ""
    url: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    # Signed distance from the walk's start: negative upstream, positive downstream.
    distance: int = 0
    # For a group of collapsed records: how many it stands for.
    count: int = 1

    @property
    def key(self) -> Key:
        return (self.kind, self.pk)

    @property
    def id(self) -> str:
        return _id(self.key)


@dataclass
class Graph:
    root: Key
    nodes: dict[Key, Node]
    # (upstream, downstream) → label (a dataset's role in a run; empty otherwise).
    edges: dict[tuple[Key, Key], str]
    truncated: bool = False
    collapsed: list[str] = field(default_factory=list)
    depth: int = MAX_DEPTH


class _Reach:
    """Which rows of each kind the user may reach: None where nothing is hidden (a global
    view grant sees the whole catalogue), else a subquery of visible keys."""

    def __init__(self, user: AnyUser) -> None:
        self.user = user
        self.everything = permissions.has_global(user, Perm.VIEW)
        self._cache: dict[str, QuerySet[Any] | None] = {}

    def keys(self, kind: str) -> QuerySet[Any] | None:
        if kind not in self._cache:
            rows = ROWS[kind]._default_manager.all()
            if kind in ("version", "deployment"):
                self._cache[kind] = permissions.visible(self.user, rows).values("pk")
            elif self.everything:
                self._cache[kind] = None
            else:
                self._cache[kind] = permissions.visible_lineage(self.user, rows).values("pk")
        return self._cache[kind]

    def only(self, rows: QuerySet[Any], kind: str, column: str) -> QuerySet[Any]:
        keys = self.keys(kind)
        return rows if keys is None else rows.filter(**{f"{column}__in": keys})


# One step of the chain: (upstream kind, downstream kind, the table linking them, its upstream
# and downstream columns (rows with no upstream link do not count), an optional label column).
# Walking down reads rows by the upstream column, walking up by the downstream one.
@dataclass(frozen=True)
class _Step:
    up: str
    down: str
    table: type[Model]
    up_column: str
    down_column: str
    label: str | None = None


STEPS = (
    _Step("source", "feature", LogicalFeature, "source_id", "pk"),
    _Step("feature", "dataset", _FeatureDatasets, "logicalfeature_id", "dataset_id"),
    _Step("dataset", "run", TrainingRunDataset, "dataset_id", "training_run_id", "role"),
    _Step("code", "run", TrainingRun, "code_ref_id", "pk"),
    _Step("run", "version", ModelVersion, "training_run_id", "pk"),
    _Step("version", "deployment", Deployment, "version_id", "pk"),
)


def _links(
    reach: _Reach, frontier: dict[str, set[int]], downstream: bool, room: int
) -> tuple[list[tuple[Key, Key, str]], bool]:
    """Links one step away from the frontier, in the walk's direction, between records the
    user may see: (upstream, downstream, label), one query per step that applies, each reading
    at most `room` rows; and whether some step had more."""
    found: list[tuple[Key, Key, str]] = []
    cut = False
    for step in STEPS:
        start = step.up if downstream else step.down
        ids = frontier.get(start)
        if not ids:
            continue
        rows = step.table._default_manager.filter(**{f"{step.up_column}__isnull": False}).filter(
            **{f"{step.up_column if downstream else step.down_column}__in": id_subquery(ids)}
        )
        # Walking up needs no filter: whatever leads to a record the user may see leads to the
        # versions that make it visible, so it is visible too (the start passed _start, and
        # every record reached downstream passed this filter). Walking down filters the far
        # end; versions and deployments through the gate directly (they are the rows).
        if downstream and step.down_column == "pk" and step.down in ("version", "deployment"):
            rows = permissions.visible(reach.user, rows)
        elif downstream:
            rows = reach.only(rows, step.down, step.down_column)
        columns = [step.up_column, step.down_column] + ([step.label] if step.label else [])
        read = list(
            rows.order_by(step.up_column, step.down_column).values_list(*columns)[: room + 1]
        )
        cut = cut or len(read) > room
        for row in read[:room]:
            found.append(((step.up, row[0]), (step.down, row[1]), row[2] if step.label else ""))
    return found, cut


def _walk(
    reach: _Reach,
    starts: Iterable[Key],
    depth: int,
    downstream: bool,
    nodes: dict[Key, Node],
    edges: dict[tuple[Key, Key], str],
    parents: dict[Key, Key] | None = None,
) -> bool:
    """Breadth-first from `starts` one way, `depth` levels at most, adding what it reaches to
    `nodes` and `edges` (and each record's first parent, for paths), never past MAX_NODES
    records besides the start. False if cut short."""
    frontier: dict[str, set[int]] = defaultdict(set)
    for kind, pk in starts:
        frontier[kind].add(pk)
    for level in range(1, depth + 1):
        if not frontier:
            break
        reached: dict[str, set[int]] = defaultdict(set)
        links, cut = _links(reach, frontier, downstream, max(MAX_NODES + 1 - len(nodes), 0))
        for up, down, label in links:
            near, far = (up, down) if downstream else (down, up)
            if far not in nodes:
                if len(nodes) > MAX_NODES:
                    cut = True
                    continue
                nodes[far] = Node(far[0], far[1], distance=level if downstream else -level)
                reached[far[0]].add(far[1])
                if parents is not None:
                    parents[far] = near
            edges.setdefault((up, down), label)
        if cut:
            return False
        frontier = reached
    return True


def _start(user: AnyUser, kind: str, pk: int) -> Key:
    """The record the walk starts from, if the user may see it (404 otherwise, missing and
    hidden alike)."""
    if kind not in ROWS:
        raise NotFound(
            f"No kind of lineage record is called '{kind}'.", code="lineage_kind_unknown"
        )
    rows = ROWS[kind]._default_manager.filter(pk=pk)
    seen = _Reach(user).keys(kind)
    if not (rows if seen is None else rows.filter(pk__in=seen)).exists():
        what = TITLES[kind][0]
        raise NotFound(f"{what.capitalize()} {pk} not found.", code="lineage_record_not_found")
    return (kind, pk)


def graph(
    user: AnyUser,
    kind: str,
    pk: int,
    *,
    depth: int = MAX_DEPTH,
    collapse: Iterable[str] = (),
    limit: int = 25,
) -> Graph:
    """The record's lineage: its ancestors and descendants `depth` steps each way, described
    (label, link, attributes) in one query per kind. Kinds in `collapse`, and any kind with
    more than `limit` records, are drawn as one group node standing for the rest."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ValidationFailed(f"Depth must be between 1 and {MAX_DEPTH}.", field="depth")
    collapse = sorted(set(collapse))
    unknown = [c for c in collapse if c not in ROWS]
    if unknown:
        raise ValidationFailed(
            f"No kind of lineage record is called '{unknown[0]}'.", field="collapse"
        )
    root = _start(user, kind, pk)
    reach = _Reach(user)
    nodes: dict[Key, Node] = {root: Node(kind, pk)}
    edges: dict[tuple[Key, Key], str] = {}
    complete = _walk(reach, [root], depth, False, nodes, edges)
    complete = _walk(reach, [root], depth, True, nodes, edges) and complete
    _describe(nodes)
    shown = Graph(root, nodes, edges, truncated=not complete, collapsed=collapse, depth=depth)
    return _collapse(shown, collapse, limit)


def _collapse(shown: Graph, kinds: Iterable[str], limit: int) -> Graph:
    """Fold records into one group node per kind: every record of the kinds asked for, and
    of any kind past `limit`, the records beyond the first `limit` (nearest first). The start
    is never folded."""
    by_kind: dict[str, list[Node]] = defaultdict(list)
    for node in shown.nodes.values():
        if node.key != shown.root:
            by_kind[node.kind].append(node)
    folded: dict[Key, Key] = {}
    for kind, members in by_kind.items():
        members.sort(key=lambda n: (abs(n.distance), n.label, n.pk))
        keep = 0 if kind in kinds else limit
        if len(members) <= keep:
            continue
        group = Node(kind, 0, count=len(members) - keep)
        group.distance = min((n.distance for n in members[keep:]), key=abs)
        group.label = f"{group.count} {TITLES[kind][group.count != 1]}" + (" more" if keep else "")
        for node in members[keep:]:
            folded[node.key] = group.key
            del shown.nodes[node.key]
        shown.nodes[group.key] = group
    if folded:
        edges: dict[tuple[Key, Key], str] = {}
        for (up, down), label in shown.edges.items():
            pair = (folded.get(up, up), folded.get(down, down))
            if pair[0] != pair[1]:
                edges.setdefault(pair, label if pair == (up, down) else "")
        shown.edges = edges
    return shown


# --- Describing records ------------------------------------------------------------------


def _describe(nodes: dict[Key, Node]) -> None:
    """Label, link and attributes of every node: one query per kind present (two for versions:
    their aliases; one more for the policies that protect them)."""
    wanted: dict[str, list[int]] = defaultdict(list)
    for kind, pk in nodes:
        wanted[kind].append(pk)
    root = reverse("registry:lineage-index")
    for kind, ids in wanted.items():
        _DESCRIBERS[kind](ids, nodes, root)


def _page(root: str, kind: str, pk: int) -> str:
    # `root` is reversed once per graph rather than per record (large answers have thousands).
    return f"{root}{kind}/{pk}/"


def _sources(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    for row in FeatureSource.objects.filter(pk__in=id_subquery(ids)).only("name", "kind", "uri"):
        node = nodes[("source", row.pk)]
        node.label, node.detail, node.url = (
            row.name,
            row.get_kind_display(),
            _page(root, "source", row.pk),
        )
        node.attributes = {"name": row.name, "kind": row.kind, "uri": row.uri}


def _features(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    for pk, name, dtype, source in LogicalFeature.objects.filter(
        pk__in=id_subquery(ids)
    ).values_list("pk", "name", "dtype", "source__name"):
        node = nodes[("feature", pk)]
        node.label, node.detail, node.url = (
            name,
            f"{source}" + (f" · {dtype}" if dtype else ""),
            _page(root, "feature", pk),
        )
        node.attributes = {"name": name, "dtype": dtype, "source": source}


def _datasets(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    for pk, name, version, digest in Dataset.objects.filter(pk__in=id_subquery(ids)).values_list(
        "pk", "name", "version", "digest"
    ):
        node = nodes[("dataset", pk)]
        node.label, node.detail, node.url = name, f"version {version}", _page(root, "dataset", pk)
        node.attributes = {"name": name, "version": version, "digest": digest}


def _code_refs(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    for pk, repository, commit, path in CodeRef.objects.filter(pk__in=id_subquery(ids)).values_list(
        "pk", "repository", "commit", "path"
    ):
        node = nodes[("code", pk)]
        node.label = repository.rstrip("/").rsplit("/", 1)[-1] or repository
        node.detail, node.url = (
            commit[:12] + (f" · {path}" if path else ""),
            _page(root, "code", pk),
        )
        node.attributes = {"repository": repository, "commit": commit, "path": path}


def _runs(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    for pk, run_id, name, status in TrainingRun.objects.filter(pk__in=id_subquery(ids)).values_list(
        "pk", "run_id", "name", "status"
    ):
        node = nodes[("run", pk)]
        node.label, node.detail, node.url = name or run_id, status, _page(root, "run", pk)
        node.attributes = {"run_id": run_id, "name": name, "status": status}


def _versions(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    rows = versions_serving(ModelVersion.objects.filter(pk__in=id_subquery(ids)))
    for row in rows:
        node = nodes[("version", row.pk)]
        node.label = f"{row.registered_model.name} v{row.version}"
        node.detail = row.get_stage_display() + "".join(f" · @{a}" for a in row.alias_names)  # type: ignore[attr-defined]
        node.url = reverse("registry:version-detail", args=[row.registered_model.name, row.version])
        node.attributes = serving_facts(row)


def _deployments(ids: list[int], nodes: dict[Key, Node], root: str) -> None:
    for row in Deployment.objects.filter(pk__in=id_subquery(ids)).select_related(
        "version__registered_model"
    ):
        node = nodes[("deployment", row.pk)]
        node.label, node.detail = f"{row.environment}", row.target
        node.url = _page(root, "deployment", row.pk)
        node.attributes = {
            "environment": row.environment,
            "target": row.target,
            "status": row.status,
            "deployed_at": row.deployed_at.isoformat(),
            "retired_at": row.retired_at.isoformat() if row.retired_at else None,
            "model": row.version.registered_model.name,
            "version": row.version.version,
        }


_DESCRIBERS: dict[str, Callable[[list[int], dict[Key, Node], str], None]] = {
    "source": _sources,
    "feature": _features,
    "dataset": _datasets,
    "code": _code_refs,
    "run": _runs,
    "version": _versions,
    "deployment": _deployments,
}


def versions_serving(rows: QuerySet[ModelVersion]) -> list[ModelVersion]:
    """The versions with how they serve: `alias_names`, `protected_alias_names` (those the
    model's policy protects), `active_deployments` [(environment, target)] and `approved`
    (may serve in production). Three queries and the policies', however many versions."""
    versions = list(
        rows.select_related("registered_model")
        .only("version", "stage", "registered_model__name", "registered_model__risk_tier")
        .order_by("registered_model__name", "version")
    )
    ids = [v.pk for v in versions]
    aliases: dict[int, list[str]] = defaultdict(list)
    for version_id, name in (
        Alias.objects.filter(version_id__in=id_subquery(ids))
        .order_by("name")
        .values_list("version_id", "name")
    ):
        aliases[version_id].append(name)
    deployed: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for version_id, environment, target in (
        Deployment.objects.filter(version_id__in=id_subquery(ids), status=Deployment.Status.ACTIVE)
        .order_by("environment", "target")
        .values_list("version_id", "environment", "target")
    ):
        deployed[version_id].append((environment, target))
    for version in versions:
        version.alias_names = aliases[version.pk]  # type: ignore[attr-defined]
        version.active_deployments = deployed[version.pk]  # type: ignore[attr-defined]
    protected = governor().protected_aliases(versions) if versions else {}
    approved = governor().approved_versions(versions) if versions else set()
    for version in versions:
        version.protected_alias_names = protected[version.pk]  # type: ignore[attr-defined]
        version.approved = version.pk in approved  # type: ignore[attr-defined]
    return versions


def serving_facts(version: ModelVersion) -> dict[str, Any]:
    """What versions_serving found about one version, as JSON-ready facts."""
    return {
        "model": version.registered_model.name,
        "version": version.version,
        "stage": version.stage,
        "in_production": version.stage == ModelVersion.Stage.PRODUCTION,
        "aliases": list(getattr(version, "alias_names", [])),
        "protected_aliases": list(getattr(version, "protected_alias_names", [])),
        "deployments": [
            {"environment": e, "target": t} for e, t in getattr(version, "active_deployments", [])
        ],
        "approved": bool(getattr(version, "approved", False)),
    }


# --- Impact analysis ---------------------------------------------------------------------

IMPACT_FILTERS = ("production", "protected", "deployed", "serving")


@dataclass
class Impacted:
    node: Node
    facts: dict[str, Any]
    path: list[Node]


@dataclass
class Impact:
    starts: list[Node]
    results: list[Impacted]
    # Counts over every version reached (before `only`).
    summary: dict[str, int]
    truncated: bool = False


def _serving_filter(facts: dict[str, Any], only: str | None) -> bool:
    if only == "production":
        return bool(facts["in_production"])
    if only == "protected":
        return bool(facts["protected_aliases"])
    if only == "deployed":
        return bool(facts["deployments"])
    if only == "serving":
        return bool(facts["in_production"] or facts["protected_aliases"] or facts["deployments"])
    return True


def impact(
    user: AnyUser, kind: str, pk: int, *, all_versions: bool = False, only: str | None = None
) -> Impact:
    """Which model versions the user may see depend on the record (for a dataset with
    `all_versions`, on any version of the dataset of that name), each with one path that links
    it (nearest first; records on it in chain order), whether it is in production, which
    protected aliases it holds and where it is deployed. `only` keeps the versions in
    production, holding a protected alias, deployed, or any of these ("serving")."""
    if kind not in IMPACT_KINDS:
        raise ValidationFailed(
            f"Impact analysis starts from one of: {', '.join(IMPACT_KINDS)}.", field="kind"
        )
    if only not in (None, *IMPACT_FILTERS):
        raise ValidationFailed(f"Must be one of {', '.join(IMPACT_FILTERS)}.", field="only")
    root = _start(user, kind, pk)
    reach = _Reach(user)
    starts = [root]
    if all_versions and kind == "dataset":
        name = Dataset.objects.filter(pk=pk).values_list("name", flat=True).get()
        same = reach.only(Dataset.objects.filter(name=name), "dataset", "pk")
        starts = [("dataset", other) for other in same.order_by("pk").values_list("pk", flat=True)]
    nodes: dict[Key, Node] = {key: Node(*key) for key in starts}
    edges: dict[tuple[Key, Key], str] = {}
    parents: dict[Key, Key] = {}
    complete = _walk(reach, starts, MAX_DEPTH, True, nodes, edges, parents)
    # Describe what the answer shows: the versions and the records on their paths.
    versions = [key for key in nodes if key[0] == "version"]
    shown: dict[Key, Node] = {}
    for key in versions:
        step: Key | None = key
        while step is not None and step not in shown:
            shown[step] = nodes[step]
            step = parents.get(step)
    shown.update({key: nodes[key] for key in starts})
    _describe(shown)
    results: list[Impacted] = []
    summary = {"versions": 0, "in_production": 0, "protected": 0, "deployed": 0, "serving": 0}
    for key in versions:
        node = shown[key]
        facts = node.attributes
        summary["versions"] += 1
        for name in IMPACT_FILTERS:
            summary[{"production": "in_production"}.get(name, name)] += _serving_filter(facts, name)
        if not _serving_filter(facts, only):
            continue
        path = [node]
        while path[-1].key in parents:
            path.append(shown[parents[path[-1].key]])
        results.append(Impacted(node=node, facts=facts, path=path[::-1]))
    results.sort(key=lambda r: (r.facts["model"], r.facts["version"]))
    return Impact(
        starts=[shown[key] for key in starts],
        results=results,
        summary=summary,
        truncated=not complete,
    )


# --- Options from a query string (pages and the API read them alike) ---------------------


@dataclass(frozen=True)
class GraphOptions:
    depth: int = MAX_DEPTH
    collapse: tuple[str, ...] = ()
    limit: int = 25

    @classmethod
    def parse(cls, query: Any) -> GraphOptions:
        """From a QueryDict: `depth` (1–5), `collapse` (kinds, repeated or comma-separated),
        `limit` (records of one kind drawn before the rest fold, 1–500). 400 when malformed."""
        depth = _bounded(query.get("depth"), "depth", MAX_DEPTH, 1, MAX_DEPTH)
        limit = _bounded(query.get("limit"), "limit", 25, 1, 500)
        kinds = sorted(
            {k.strip() for v in query.getlist("collapse") for k in v.split(",") if k.strip()}
        )
        unknown = [k for k in kinds if k not in ROWS]
        if unknown:
            raise ValidationFailed(
                f"No kind of lineage record is called '{unknown[0]}' (one of: {', '.join(KINDS)}).",
                field="collapse",
            )
        return cls(depth=depth, collapse=tuple(kinds), limit=limit)


def _bounded(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    # The edge's rule for whole numbers first (ASCII digits, at most 20 of them), so int() never
    # meets a string past its 4,300-digit limit, zero-padded ones included.
    if not is_whole_number(raw) or not low <= int(raw) <= high:
        raise ValidationFailed(f"{name} must be a whole number from {low} to {high}.", field=name)
    return int(raw)


def impact_options(query: Any) -> tuple[bool, str | None]:
    """`all_versions` (true/false) and `only` from a QueryDict; 400 when malformed."""
    raw = (query.get("all_versions") or "false").strip().lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationFailed("all_versions must be true or false.", field="all_versions")
    only = query.get("only") or None
    if only not in (None, *IMPACT_FILTERS):
        raise ValidationFailed(f"only must be one of {', '.join(IMPACT_FILTERS)}.", field="only")
    return raw in ("true", "1"), only


def graph_json(shown: Graph) -> dict[str, Any]:
    """The graph as the API answers it."""
    return {
        "root": f"{shown.root[0]}:{shown.root[1]}",
        "depth": shown.depth,
        "collapsed": shown.collapsed,
        "truncated": shown.truncated,
        "nodes": [node_json(n) for n in sorted(shown.nodes.values(), key=node_order)],
        "edges": [
            {"from": _id(up), "to": _id(down), "role": label}
            for (up, down), label in sorted(shown.edges.items())
        ],
    }


def node_order(node: Node) -> tuple[int, int, str, int]:
    """Chain order, then nearest first: how lists of a graph's records are sorted."""
    return (COLUMN[node.kind], node.distance, node.label, node.pk)


def _id(key: Key) -> str:
    return f"{key[0]}:{key[1]}" if key[1] else f"{key[0]}:more"


def node_json(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "kind": node.kind,
        "pk": node.pk or None,
        "label": node.label,
        "detail": node.detail,
        "url": node.url or None,
        "distance": node.distance,
        "count": node.count,
        "attributes": node.attributes,
    }


def impact_json(found: Impact) -> dict[str, Any]:
    return {
        "starts": [node_json(n) for n in found.starts],
        "summary": found.summary,
        "truncated": found.truncated,
        "results": [
            {**r.facts, "url": r.node.url, "path": [node_json(n) for n in r.path]}
            for r in found.results
        ],
    }
