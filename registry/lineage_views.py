"""Lineage pages: a record, its graph drawn, and what depends on it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from core.errors import NotFound, ValidationFailed
from core.pages import page
from registry import lineage_graph, lineage_svg, selectors


@page
def lineage(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """The record's facts, its lineage drawn (depth and folding from the query string) and,
    for records others are made from, a link to the impact analysis."""
    error = ""
    try:
        options = lineage_graph.GraphOptions.parse(request.GET)
    except ValidationFailed as exc:
        options, error = lineage_graph.GraphOptions(), exc.message
    shown = lineage_graph.graph(
        request.user, kind, pk, depth=options.depth, collapse=options.collapse, limit=options.limit
    )

    def expand(group_kind: str) -> str:
        query = QueryDict(mutable=True)
        query.setlist("collapse", [k for k in options.collapse if k != group_kind])
        query["depth"] = str(options.depth)
        query["limit"] = str(500 if group_kind not in options.collapse else options.limit)
        return f"{request.path}?{query.urlencode()}"

    root = shown.nodes[shown.root]
    facts = [(name.replace("_", " "), _shown(value)) for name, value in root.attributes.items()]
    nodes = sorted(shown.nodes.values(), key=lineage_graph.node_order)
    return render(
        request,
        "registry/lineage.html",
        {
            "root": root,
            "facts": facts,
            "title": lineage_graph.TITLES[kind][0],
            "drawing": lineage_svg.svg(shown, expand),
            "nodes": nodes,
            "graph": shown,
            "options": options,
            "error": error,
            "kinds": [(k, lineage_graph.TITLES[k][1]) for k in lineage_graph.KINDS],
            "depths": range(1, lineage_graph.MAX_DEPTH + 1),
            "may_impact": kind in lineage_graph.IMPACT_KINDS,
            "api_url": _link(
                reverse("registry-api:lineage-graph", args=[kind, pk]),
                depth=str(options.depth),
                limit=str(options.limit),
                collapse=list(options.collapse),
            ),
        },
    )


@page
def lineage_impact(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """Which versions depend on the record, each with the path that links it."""
    if kind not in lineage_graph.IMPACT_KINDS:
        raise NotFound(f"Impact analysis does not start from a {kind}.", code="not_found")
    error = ""
    try:
        all_versions, only = lineage_graph.impact_options(request.GET)
    except ValidationFailed as exc:
        all_versions, only, error = False, None, exc.message
    found = lineage_graph.impact(request.user, kind, pk, all_versions=all_versions, only=only)
    return render(
        request,
        "registry/lineage_impact.html",
        {
            "found": found,
            "root": found.starts[0] if len(found.starts) == 1 else None,
            "start": next(n for n in found.starts if (n.kind, n.pk) == (kind, pk)),
            "title": lineage_graph.TITLES[kind][0],
            "kind": kind,
            "pk": pk,
            "only": only or "",
            "all_versions": all_versions,
            "filters": [("", "every version")] + [(f, f) for f in lineage_graph.IMPACT_FILTERS],
            "error": error,
            "api_url": _link(
                reverse("registry-api:lineage-impact", args=[kind, pk]),
                only=only or [],
                all_versions="true" if all_versions else [],
            ),
        },
    )


def _shown(value: object) -> str:
    """A record's fact as a reader wants it: lists joined, deployments as environment: target,
    yes/no, a dash for nothing."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(
            f"{v.get('environment')}: {v.get('target')}" if isinstance(v, dict) else str(v)
            for v in value
        )
    return str(value)


def _link(path: str, **values: str | list[str]) -> str:
    """`path` with the options a page went by (not the query it was asked with, which may
    have been malformed and replaced by defaults)."""
    query = QueryDict(mutable=True)
    for name, value in values.items():
        query.setlist(name, [value] if isinstance(value, str) else value)
    return f"{path}?{query.urlencode()}" if query else path


@page
def lineage_index(request: HttpRequest) -> HttpResponse:
    """Where lineage starts: the feature sources, features, datasets, code references and
    training runs the user may see (their names filtered by `q`), newest first, each leading to
    its graph. One query per kind and one count each."""
    query = (request.GET.get("q") or "").strip()[:200]
    sections = []
    for kind, rows, field in selectors.lineage_catalogue(user=request.user):
        if query:
            rows = rows.filter(**{f"{field}__icontains": query})
        sections.append(
            {
                "kind": kind,
                "title": lineage_graph.TITLES[kind][1],
                "rows": list(rows.order_by("-created_at", "-pk")[:INDEX_ROWS]),
                "count": rows.count(),
            }
        )
    return render(
        request,
        "registry/lineage_index.html",
        {"sections": sections, "q": query, "shown": INDEX_ROWS},
    )


INDEX_ROWS = 50
