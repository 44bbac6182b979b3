"""A reviewer follows lineage in headless Chromium, on the demo data: from a version page to
its graph, through a dataset node to what depends on that dataset, then folds the features
into one node. Every SVG record is a link reached by Tab, and the lineage pages run without a
Content-Security-Policy violation. Launched like test_journeys.py (Debian's chromium; skipped
without it unless MODELGATE_REQUIRE_BROWSER is set); screenshots under test-output/browser/."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from registry.models import Dataset, ModelVersion
from tests.browser import test_csp, test_journeys

pytestmark = pytest.mark.django_db(transaction=True)
# The journeys' fixtures: Debian's chromium, the demo data on a live server, a signed-in page.
browser, demo, session = test_journeys.browser, test_journeys.demo, test_journeys.session
shot = test_journeys.shot
MODEL = "credit-risk-classifier"


def _production(name: str) -> ModelVersion:
    return ModelVersion.objects.get(registered_model__name=name, stage="production")


def test_a_reviewer_follows_a_dataset_from_a_version_graph_to_what_depends_on_it(
    session: Callable[[str], Page], demo: str
) -> None:
    page = session("carol")
    seen = test_csp._watch(page)
    version = _production(MODEL)
    shared = Dataset.objects.get(name="customer-profile", version="2026-10")

    # The version page links its lineage graph.
    page.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name=MODEL, exact=True).click()
    versions_table = page.locator("#compare-form")
    versions_table.get_by_role("link", name=f"v{version.version}", exact=True).click()
    expect(page.locator("h1")).to_contain_text(MODEL)
    page.get_by_role("link", name="Lineage graph").click()
    page.wait_for_url(f"{demo}/lineage/version/{version.pk}/")
    graph = page.locator("svg.lineage-graph")
    expect(graph).to_be_visible()
    # Upstream: sources, features, datasets, code, the run; downstream: its deployments.
    for kind in ("source", "feature", "dataset", "code", "run", "deployment"):
        assert graph.locator(f"a.node.kind-{kind}").count() >= 1, kind
    assert graph.locator("a.node.root.kind-version").count() == 1
    assert graph.locator("path.edge").count() >= graph.locator("a.node").count() - 1
    shot(page, "lineage-1-version-graph")

    # A dataset node in the drawing leads to that dataset's own lineage.
    node = graph.locator("a.node.kind-dataset", has_text="customer-profile")
    expect(node).to_have_count(1)
    node.click()
    page.wait_for_url(f"{demo}/lineage/dataset/{shared.pk}/")
    expect(page.locator("h1")).to_contain_text("customer-profile")
    versions = page.locator("svg.lineage-graph a.node.kind-version")
    drawn = " ".join(versions.all_text_contents())
    for name in (MODEL, "fraud-detector", "churn-predictor"):
        assert name in drawn, name
    shot(page, "lineage-2-dataset-graph")

    # What depends on it: versions of several models, each with the path that links it.
    page.get_by_role("link", name="What depends on this").click()
    page.wait_for_url(f"{demo}/lineage/dataset/{shared.pk}/impact/")
    rows = page.locator("table.impact tbody tr")
    listed = rows.locator("td:first-child a").all_text_contents()
    models = {re.sub(r" v\d+$", "", text) for text in listed}
    assert {MODEL, "fraud-detector", "churn-predictor"} <= models, listed
    assert f"{MODEL} v{version.version}" in listed
    row = rows.filter(has=page.get_by_role("link", name=f"{MODEL} v{version.version}", exact=True))
    path = row.locator("td.path a")
    assert path.all_text_contents() == [
        "customer-profile",
        f"{MODEL} training #{version.version}",
        f"{MODEL} v{version.version}",
    ]
    expect(row.locator(".badge")).to_have_text("production")
    expect(page.locator("ul.summary")).to_contain_text("in production")
    shot(page, "lineage-3-impact")
    # Its path leads back: the run's link opens the run's lineage.
    path.nth(1).click()
    expect(page.locator("h1")).to_contain_text(f"{MODEL} training #{version.version}")

    # Back on the dataset: fold the features into one node with the form.
    page.goto(f"{demo}/lineage/dataset/{shared.pk}/")
    features = page.locator("svg.lineage-graph a.node.kind-feature")
    assert features.count() == 5 and page.locator("a.node.group").count() == 0
    page.locator("form.graph-options").get_by_label("features", exact=True).check()
    page.get_by_role("button", name="Redraw").click()
    page.wait_for_url(re.compile(r".*collapse=feature.*"))
    group = page.locator("svg.lineage-graph a.node.group.kind-feature")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("5 features")
    assert features.count() == 1  # the group stands for all five
    shot(page, "lineage-4-features-folded")
    # The group unfolds again when selected.
    group.click()
    expect(page.locator("svg.lineage-graph a.node.kind-feature")).to_have_count(5)

    assert seen + [f"event: {e}" for e in page.evaluate("window.__csp || []")] == []


def test_the_graph_s_records_are_reached_by_keyboard(
    session: Callable[[str], Page], demo: str
) -> None:
    """Every record in the drawing is an SVG link: Tab reaches it and Enter follows it."""
    page = session("victor")
    seen = test_csp._watch(page)
    version = _production(MODEL)
    page.goto(f"{demo}/lineage/version/{version.pk}/")
    nodes = page.locator("svg.lineage-graph a.node")
    total = nodes.count()
    reached: list[str] = []
    for _ in range(200):
        page.keyboard.press("Tab")
        href = page.evaluate(
            "() => { const a = document.activeElement;"
            " return a && a.closest('svg.lineage-graph') ? a.getAttribute('href') : null; }"
        )
        if href is not None and href not in reached:
            reached.append(href)
        if len(reached) == total:
            break
    assert len(reached) == total, f"Tab reached {len(reached)} of {total} records"
    shot(page, "lineage-5-keyboard-focus")
    # Enter on the focused record (the last one reached) opens its page.
    page.keyboard.press("Enter")
    page.wait_for_url(f"{demo}{reached[-1]}")
    assert seen + [f"event: {e}" for e in page.evaluate("window.__csp || []")] == []
