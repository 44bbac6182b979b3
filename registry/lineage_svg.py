"""Draws a lineage graph as SVG on the server: one column per kind of record in chain order
(sources, features, datasets and code, runs, versions, deployments), records ordered within a
column to keep links short (a few barycentre sweeps), links as curves from left to right.
Every record is a link to its page; the text is escaped; styling comes from the stylesheet
(classes only: the page's CSP allows no inline style)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from registry.lineage_graph import COLUMN, TITLES, Graph, Key, Node

WIDTH, HEIGHT = 184, 50
COLUMN_GAP, ROW_GAP, MARGIN = 56, 14, 8
SWEEPS = 4


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def layout(graph: Graph) -> dict[Key, tuple[float, float]]:
    """Top-left corner of every node."""
    columns: dict[int, list[Node]] = defaultdict(list)
    for node in graph.nodes.values():
        columns[COLUMN[node.kind]].append(node)
    order = sorted(columns)
    for col in order:
        columns[col].sort(key=lambda n: (abs(n.distance), n.label, n.pk))
    neighbours: dict[Key, list[Key]] = defaultdict(list)
    for up, down in graph.edges:
        neighbours[up].append(down)
        neighbours[down].append(up)
    row: dict[Key, float] = {}

    def number() -> None:
        for col in order:
            for index, node in enumerate(columns[col]):
                row[node.key] = index

    number()
    for sweep in range(SWEEPS):
        for col in order if sweep % 2 == 0 else reversed(order):

            def centre(node: Node) -> float:
                near = [row[k] for k in neighbours[node.key] if k in row]
                return sum(near) / len(near) if near else row[node.key]

            columns[col].sort(key=lambda n: (centre(n), row[n.key]))
            number()
    tallest = max(len(nodes) for nodes in columns.values())
    place: dict[Key, tuple[float, float]] = {}
    for x_index, col in enumerate(order):
        nodes = columns[col]
        # Shorter columns are centred against the tallest.
        offset = (tallest - len(nodes)) * (HEIGHT + ROW_GAP) / 2
        for y_index, node in enumerate(nodes):
            place[node.key] = (
                MARGIN + x_index * (WIDTH + COLUMN_GAP),
                MARGIN + offset + y_index * (HEIGHT + ROW_GAP),
            )
    return place


def svg(graph: Graph, group_url: Callable[[str], str]) -> SafeString:
    """The graph drawn; `group_url(kind)` is where a group of folded records leads (the same
    graph with that kind unfolded)."""
    place = layout(graph)
    width = max(x for x, _ in place.values()) + WIDTH + MARGIN
    height = max(y for _, y in place.values()) + HEIGHT + MARGIN
    links = []
    for (up, down), label in sorted(graph.edges.items()):
        (x1, y1), (x2, y2) = place[up], place[down]
        x1, y1, y2 = x1 + WIDTH, y1 + HEIGHT / 2, y2 + HEIGHT / 2
        bend = (x2 - x1) / 2
        links.append(
            (
                f"edge role-{label}" if label else "edge",
                f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} "
                f"{x2:.0f},{y2:.0f}",
                label or f"{TITLES[up[0]][0]} → {TITLES[down[0]][0]}",
            )
        )
    boxes = []
    for node in sorted(graph.nodes.values(), key=lambda n: place[n.key]):
        x, y = place[node.key]
        classes = f"node kind-{node.kind}" + (" root" if node.key == graph.root else "")
        classes += "" if node.pk else " group"
        if node.kind == "version" and node.attributes.get("in_production"):
            classes += " serving"
        title = f"{TITLES[node.kind][0]}: {node.label}"
        text_x = f"{x + 10:.0f}"
        boxes.append(
            (
                node.url if node.pk else group_url(node.kind),
                classes,
                title + (f" ({node.detail})" if node.detail else ""),
                f"{x:.0f}",
                f"{y:.0f}",
                text_x,
                f"{y + 15:.0f}",
                TITLES[node.kind][0].upper() if node.pk else "folded · select to expand",
                text_x,
                f"{y + 31:.0f}",
                _short(node.label, 24),
                text_x,
                f"{y + 44:.0f}",
                _short(node.detail, 29),
            )
        )
    return format_html(
        '<svg class="lineage-graph" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" '
        'viewBox="0 0 {} {}" role="img" aria-labelledby="lineage-graph-title">'
        '<title id="lineage-graph-title">Lineage of {}</title>{}{}</svg>',
        f"{width:.0f}",
        f"{height:.0f}",
        f"{width:.0f}",
        f"{height:.0f}",
        graph.nodes[graph.root].label,
        format_html_join("", '<path class="{}" d="{}"><title>{}</title></path>', links),
        format_html_join(
            "",
            '<a href="{}" class="{}"><title>{}</title>'
            f'<rect x="{{}}" y="{{}}" width="{WIDTH}" height="{HEIGHT}" rx="6"/>'
            '<text x="{}" y="{}" class="kind">{}</text>'
            '<text x="{}" y="{}" class="label">{}</text>'
            '<text x="{}" y="{}" class="detail">{}</text></a>',
            boxes,
        ),
    )
