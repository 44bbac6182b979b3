"""Journeys through the dashboard in headless Chromium (Playwright driving Debian's chromium),
on the demo data, against a live server. Each step saves a screenshot under
test-output/browser/.

Skipped when no chromium is on the PATH, unless MODELGATE_REQUIRE_BROWSER is set (CI sets it,
after installing Debian's chromium), in which case a missing browser fails the run.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from playwright.sync_api import expect

from core.models import AuditEvent
from governance.models import PromotionRequest
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
PASSWORD = "modelgate-demo"


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("MODELGATE_REQUIRE_BROWSER"):
            pytest.fail("MODELGATE_REQUIRE_BROWSER is set but no chromium is on the PATH")
        pytest.skip("needs Debian's chromium on the PATH (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous and single-threaded.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def demo(live_server):
    call_command("demo", "--no-serve", stdout=io.StringIO())
    return live_server.url


@pytest.fixture
def session(browser, demo):
    """Open a signed-in page for a demo user: session("carol")."""
    contexts = []

    def open_as(username: str):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{demo}/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{demo}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_request_review_and_audit_journey(session, demo):
    # A data scientist opens a demo model, compares two versions and asks for the better one.
    alice = session("alice")
    alice.get_by_role("link", name="Models", exact=True).click()
    alice.get_by_role("link", name="demand-forecaster").click()
    expect(alice.get_by_role("heading", name="demand-forecaster")).to_be_visible()
    alice.get_by_label("Compare v2").check()
    alice.get_by_label("Compare v3").check()
    alice.get_by_role("button", name="Compare selected").click()
    chart = alice.locator("svg[aria-labelledby=chart-title] rect")
    assert chart.count() == 6  # three metrics, two versions
    assert alice.locator("tr.differs").count() >= 3
    # Changes are called better or worse by each metric's direction, each bar on its axis.
    expect(alice.locator("td.better, td.worse").first).to_be_visible()
    expect(alice.locator("figure.chart .axis").first).to_contain_text("axis")
    shot(alice, "1-compare")
    auc_row = alice.locator("table.compare tbody tr").filter(
        has=alice.locator("th", has_text=re.compile(r"^auc"))
    )
    auc = [float(auc_row.locator("td.num").nth(i).inner_text()) for i in (0, 1)]
    better = 3 if auc[1] >= auc[0] else 2
    assert better == 3, f"the demo's newest version has the best AUC: {auc}"
    alice.get_by_role("link", name="demand-forecaster").click()
    alice.get_by_role("link", name="Request promotion").click()
    alice.get_by_label("Version").select_option(str(better))
    checklist = alice.locator("#checklist")
    # The checklist follows the choice: against staging, v3 is what the target holds now.
    alice.get_by_label("Target").select_option("staging")
    expect(checklist).to_contain_text("Against v3, now in the target")
    alice.get_by_label("Target").select_option("production")
    expect(checklist).to_contain_text("Against v2, now in the target")
    expect(checklist.get_by_text("Artifact stored with its SHA-256")).to_be_visible()
    alice.get_by_label("Justification").fill("Higher AUC on the holdout set.")
    shot(alice, "2-request-form")
    alice.get_by_role("button", name="Request promotion").click()
    expect(alice.get_by_text("created: pending")).to_be_visible()
    request = PromotionRequest.objects.get(
        registered_model__name="demand-forecaster", status="pending"
    )
    assert request.version.version == better

    # The requester sees no approve button on her own request, and a forged POST is refused.
    assert alice.get_by_role("button", name="Approve").count() == 0
    expect(alice.locator("#review-refusal")).to_contain_text("You may not approve")
    token = alice.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    forged = alice.request.post(
        f"{demo}/requests/{request.pk}/review/",
        form={"decision": "approve", "comment": "self-approved", "csrfmiddlewaretoken": token},
        headers={"Referer": alice.url},
    )
    assert forged.status == 403
    assert not request.reviews.exists()
    shot(alice, "3-requester-sees-no-approve")

    # A reviewer finds it in the inbox, sees the readiness checks and approves.
    carol = session("carol")
    expect(carol.locator("#awaiting").get_by_role("link", name=f"#{request.pk}")).to_be_visible()
    carol.get_by_role("link", name="Review inbox").click()
    carol.get_by_role("link", name=f"#{request.pk}").click()
    checks = carol.locator(".checklist li")
    assert checks.count() >= 5 and carol.locator(".checklist li.fail").count() == 0
    # The evidence: metrics against the version in production, the card, who may approve.
    evidence = carol.locator("#evidence")
    expect(evidence.locator("caption")).to_contain_text(f"Metrics of v{better} against v2")
    expect(evidence.locator("td.better").first).to_be_visible()
    expect(evidence.get_by_role("link", name=f"Compare v{better} with v2")).to_be_visible()
    expect(evidence.get_by_role("link", name="Model card")).to_be_visible()
    expect(carol.locator("#eligible")).to_contain_text("carol")
    shot(carol, "4-reviewer-sees-checks")
    carol.get_by_label("Comment").fill("Metrics and card look right.")
    carol.get_by_role("button", name="Approve").click()
    expect(carol.get_by_text("Recorded: approve.")).to_be_visible()
    expect(carol.locator("#request-status")).to_have_text("Applied")
    carol.get_by_role("link", name=f"demand-forecaster v{better}").click()
    expect(carol.locator("h1 .badge")).to_have_text("Production")
    shot(carol, "5-version-in-production")
    # The version that was in production before is archived now.
    assert (
        ModelVersion.objects.get(registered_model__name="demand-forecaster", version=2).stage
        == "archived"
    )
    carol.get_by_role("link", name="demand-forecaster", exact=True).click()
    row = carol.locator("tbody tr", has=carol.get_by_role("link", name="v2", exact=True))
    assert row.locator(".badge").first.inner_text() == "Archived"

    # The audit page tells the whole story, each event linking to its object.
    admin = session("admin")
    admin.goto(f"{demo}/audit/?model=demand-forecaster&action=promotion.")
    table = admin.locator("table").inner_text()
    for action in (
        "promotion.requested",
        "promotion.reviewed",
        "promotion.approved",
        "promotion.applied",
    ):
        assert action in table, action
    assert "alice" in table and "carol" in table
    # Each action in words beside its code, and the model in its own column.
    for label in ("Promotion requested", "Promotion approved", "Promotion applied"):
        assert label in table, label
    assert "['" not in table and "None" not in table
    assert admin.locator(f'table a[href="/requests/{request.pk}/"]').count() >= 4
    shot(admin, "6-audit-story")
    admin.locator(f'table a[href="/requests/{request.pk}/"]').first.click()
    expect(admin.get_by_text("Metrics and card look right.")).to_be_visible()
    assert AuditEvent.objects.filter(
        action="promotion.applied", registered_model_name="demand-forecaster"
    ).exists()


def test_a_viewer_cannot_see_a_model_they_were_not_granted(session, demo):
    olivia = session("olivia")
    olivia.get_by_role("link", name="Models", exact=True).click()
    names = olivia.locator("table tbody").inner_text()
    assert "churn-predictor" in names and "fraud-detector" not in names
    response = olivia.goto(f"{demo}/models/fraud-detector/")
    assert response.status == 404
    expect(olivia.get_by_role("heading", name="Not found")).to_be_visible()
    shot(olivia, "7-viewer-404")


def test_pages_work_on_a_phone_and_by_keyboard(browser, demo):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{demo}/login/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{demo}/")
    page.keyboard.press("Tab")  # the first stop is the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    number = _real_data_version()
    request = PromotionRequest.objects.order_by("-pk").first()
    for path in (
        "/",
        "/models/",
        "/models/churn-predictor/",
        f"/models/churn-predictor/versions/{number}/",
        f"/models/churn-predictor/versions/{number}/card/",
        "/models/churn-predictor/compare/",
        "/inbox/",
        "/requests/",
        f"/requests/{request.pk}/",
        "/audit/",
    ):
        page.goto(f"{demo}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        if path.endswith(f"versions/{number}/"):
            # The 64-row example is folded: the jobs are not pushed far down the page.
            expect(page.locator("#input-example")).not_to_have_attribute("open", "")
            height = page.evaluate("document.documentElement.scrollHeight")
            assert height < 6000, f"the version page is {height}px tall"
            shot(page, "8-phone-version-with-long-example")
    shot(page, "8-phone-audit")
    context.close()


def test_every_page_fits_a_phone_with_long_data(browser, demo):
    """Every kind of page the dashboard has (checked against the URLconf),
    at 390 px, signed in as the administrator (who may open them all), on a model whose
    description, tags, metrics, evaluations and card hold long unbroken values: no page
    scrolls sideways."""
    from registry.models import Dataset, Deployment, TrainingRun

    number = _real_data_version(long_everything=True)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{demo}/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{demo}/")
    request = PromotionRequest.objects.order_by("-pk").first()
    team = User.objects.get(username="admin").groups.first() or _any_team()
    model, version = "/models/churn-predictor", f"/models/churn-predictor/versions/{number}"
    run = TrainingRun.objects.order_by("pk").first()
    dataset = Dataset.objects.order_by("pk").first()
    pages = {
        "registry:home": "/",
        "registry:model-list": "/models/",
        "registry:model-detail": f"{model}/",
        "registry:compare": f"{model}/compare/?versions={number - 1},{number}",
        "registry:version-detail": f"{version}/",
        "cards:card": f"{version}/card/",
        "cards:card-edit": f"{version}/card/edit/",
        "cards:card-history": f"{version}/card/history/",
        "governance:inbox": "/inbox/",
        "governance:request-list": "/requests/",
        "governance:request-new": "/requests/new/?model=churn-predictor",
        "governance:request-detail": f"/requests/{request.pk}/",
        "governance:audit-log": "/audit/",
        "governance:model-access": f"{model}/access/",
        "governance:model-compliance": f"{model}/compliance/",
        "governance:scorecard": "/scorecard/",
        "governance:scorecard-team": f"/scorecard/teams/{team.pk}/",
        "governance:model-scorecard": f"{model}/scorecard/",
        "registry:lineage-index": "/lineage/",
        "registry:lineage": f"/lineage/run/{run.pk}/",
        "registry:lineage-impact": f"/lineage/dataset/{dataset.pk}/impact/",
        "deployment in the lineage": f"/lineage/deployment/{Deployment.objects.first().pk}/",
    }
    # Every page route is here, but for actions (POST), downloads, fragments and sign-in.
    not_pages = {
        "login",
        "logout",
        "oidc_authentication_init",
        "oidc_authentication_callback",
        "cards:card-submit",
        "cards:card-review",
        "cards:card-restore",
        "cards:card-import",
        "cards:card-export",
        "governance:request-checks",
        "governance:request-review",
        "governance:request-cancel",
        "governance:request-apply",
        "governance:model-access-review",
        "registry:version-job-start",
        "registry:deployment-retire",
        "registry:artifact-download",
    }
    assert _page_route_names() - not_pages == set(pages) - {"deployment in the lineage"}
    wide = []
    for name, path in pages.items():
        response = page.goto(f"{demo}{path}")
        assert response is not None and response.status == 200, (path, response and response.status)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            page.screenshot(path=str(SHOTS / f"9-phone-overflow-{name}.png"))
            wide.append(f"{path} scrolls sideways by {overflow}px")
    assert wide == []
    page.goto(f"{demo}{pages['registry:compare']}")
    expect(page.locator("#evaluations table.confusion").first).to_be_visible()
    expect(page.locator("#evaluations table.slices").first).to_contain_text("recall by slice")
    page.screenshot(path=str(SHOTS / "9-phone-compare-with-evaluations.png"))
    context.close()


def _page_route_names() -> set[str]:
    """The names of the dashboard's routes (not the API, the admin or the MLflow API)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix: str, namespace: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield prefix + str(pattern.pattern), namespace + pattern.name

    return {
        name
        for route, name in walk(get_resolver().url_patterns, "", "")
        if not route.startswith(("api/", "admin/", "static/", "ajax-api/", "mlflow"))
    }


def _any_team():
    from django.contrib.auth.models import Group

    return Group.objects.filter(name__startswith="team-").order_by("pk").first()


def _real_data_version(*, long_everything: bool = False) -> int:
    """A version of the demo's churn-predictor with what real teams record: a 64-row input
    example and a card section holding a 20,000-character word; with `long_everything`, also
    a model description, tag, metric name, params and evaluations with long unbroken values."""
    from cards.models import ModelCard
    from cards.services import card_update
    from core.actors import Actor
    from registry import services
    from registry.models import RegisteredModel

    admin = User.objects.get(username="admin")
    actor = Actor(user=admin, channel="api")
    registered_model = RegisteredModel.objects.get(name="churn-predictor")
    example = [{"tenure": i, "plan": "premium-annual", "spend": i * 1.5} for i in range(64)]
    long = {
        "params": {"feature_list": "p" * 1000},
        "metrics": {"auc": 0.7, f"recall_{'z' * 200}": 0.5},
        "tags": {"owner_note": "t" * 250},
    }
    version, _ = services.version_create(
        actor=actor,
        registered_model=registered_model,
        input_example=example,
        **(long if long_everything else {"metrics": {"auc": 0.7}}),
    )
    card = ModelCard.objects.get(version=version)
    card_update(actor=actor, card=card, changes={"sections": {"limitations": "x" * 20_000}})
    if long_everything:
        word = "y" * 3_000
        services.registered_model_update(
            actor=actor, registered_model=registered_model, description=f"Long: {word}"
        )
        services.version_update(actor=actor, version=version, description=f"Long: {word}")
        labels = [f"class_{'w' * 60}_{i}" for i in range(12)]
        services.version_evaluations_log(
            actor=actor,
            version=version,
            evaluations=[
                {
                    "name": "confusion_" + "v" * 200,
                    "kind": "confusion_matrix",
                    "data": {
                        "labels": labels,
                        "matrix": [[(i == j) * 90 + 1 for j in range(12)] for i in range(12)],
                    },
                },
                {
                    "name": "recall_by_segment",
                    "kind": "slices",
                    "data": {
                        "metric": "recall",
                        "slices": [
                            {"slice": f"segment_{'s' * 200}_{i}", "value": i / 10} for i in range(5)
                        ],
                    },
                },
            ],
        )
    return version.version
