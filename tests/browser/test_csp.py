"""The pages satisfy their Content-Security-Policy in a real browser: headless Chromium opens
every kind of page on the demo data (the admin and the API docs included) and the test fails on
any violation the browser reports, in the console or as a securitypolicyviolation event.
Launched like test_journeys.py (Debian's chromium; skipped without it unless
MODELGATE_REQUIRE_BROWSER is set)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from governance.models import PromotionRequest
from registry.models import ModelVersion
from tests.browser import test_journeys

pytestmark = pytest.mark.django_db(transaction=True)
# The journeys' fixtures: Debian's chromium, the demo data on a live server, a signed-in page.
browser, demo, session = test_journeys.browser, test_journeys.demo, test_journeys.session
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                    " at " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


def _watch(page) -> list[str]:
    seen: list[str] = []
    page.on(
        "console",
        lambda m: (
            seen.append(f"console {m.type}: {m.text}")
            if "Content Security Policy" in m.text or "Content-Security-Policy" in m.text
            else None
        ),
    )
    page.context.add_init_script(RECORD_VIOLATIONS)
    return seen


def _visit(page, url: str, seen: list[str]) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")
    events = page.evaluate("window.__csp || []")
    seen.extend(f"event: {e}" for e in events)


def test_every_kind_of_page_runs_without_a_policy_violation(session, demo):
    page = session("admin")
    seen = _watch(page)
    version = (
        ModelVersion.objects.filter(registered_model__name="demand-forecaster")
        .order_by("-version")
        .first()
    )
    request = PromotionRequest.objects.order_by("pk").first()
    model = f"{demo}/models/demand-forecaster"
    for path in (
        "/",
        "/models/",
        "/models/demand-forecaster/",
        f"/models/demand-forecaster/versions/{version.version}/",
        "/models/demand-forecaster/compare/?v=2&v=3",
        "/requests/",
        f"/requests/{request.pk}/",
        "/requests/new/?model=demand-forecaster",
        "/inbox/",
        "/audit/",
        f"/models/demand-forecaster/versions/{version.version}/card/",
        f"/models/demand-forecaster/versions/{version.version}/card/edit/",
        "/admin/",
        "/admin/governance/webhook/add/",
        "/admin/registry/modelversion/",
        "/admin/auth/user/1/change/",
    ):
        _visit(page, f"{demo}{path}", seen)
    # The behaviours moved out of inline handlers still work.
    page.goto(f"{model}/versions/{version.version}/card/edit/")
    before = page.locator("#completeness").evaluate("e => e.value")
    page.locator(".section-field[data-required=true] textarea").first.fill("")
    expect(page.locator("#completeness-text")).not_to_have_text(
        f"{before}% of the required sections written."
    )
    assert page.locator("#completeness").evaluate("e => e.value") < before
    _visit(page, f"{demo}/api/docs/", seen)
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20000)
    test_journeys.shot(page, "csp-api-docs")
    assert page.locator(".swagger-ui .opblock").count() > 20  # the schema loaded and rendered
    seen.extend(f"event: {e}" for e in page.evaluate("window.__csp || []"))
    assert seen == [], "\n".join(seen)


def test_an_inline_script_would_be_refused_and_reported(session, demo):
    """The watch above can fail: a script injected into a page is blocked and reported."""
    page = session("alice")
    seen = _watch(page)
    _visit(page, f"{demo}/models/", seen)
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.__ran = true';
                             document.body.appendChild(s); }""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran === undefined")
    seen.extend(page.evaluate("window.__csp"))
    assert any("script-src" in s for s in seen), seen
