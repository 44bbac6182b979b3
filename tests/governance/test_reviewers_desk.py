"""The request page as the reviewer's desk and the inbox's columns (issue 17, item 1): the
candidate's metrics against the version it replaces with direction-aware changes, links to
the comparison and the model card with its state, who may still approve, and in the inbox
the risk tier, the age and a blocked marker naming the failing checks, in a fixed number of
queries however many requests the page lists."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import permissions
from core.permissions import Perm
from governance import promotions, readiness
from governance.models import Policy
from registry.models import RegisteredModel
from tests.factories import SIGNATURE, UserFactory, make_model, make_version, ready_version
from tests.governance.test_promotions import ask, decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(data_scientist, ml_engineer, reviewer, roles):
    """scorer: v1 in production (auc 0.74, latency 100 ms), v2 asked for production (auc 0.78,
    latency 119 ms) under a policy of two approvals."""
    registered_model = make_model(data_scientist, "scorer")
    Policy.objects.create(registered_model=registered_model, production_approvals=1)
    v1 = ready_version(data_scientist, registered_model, metrics={"auc": 0.74, "latency_ms": 100.0})
    decide(reviewer, ask(ml_engineer, v1))
    Policy.objects.filter(registered_model=registered_model).update(production_approvals=2)
    v2 = ready_version(data_scientist, registered_model, metrics={"auc": 0.78, "latency_ms": 119.0})
    dave = UserFactory(username="dave")
    dave.groups.add(roles["reviewer"])
    return registered_model, ask(ml_engineer, v2)


def _page(client, user, request) -> str:
    client.force_login(user)
    response = client.get(f"/requests/{request.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _cells(html: str) -> dict[str, list[str]]:
    table = html[html.index('id="request-metrics"') :]
    table = table[: table.index("</table>")]
    rows = {}
    for name, cells in re.findall(r'<th scope="row">([a-z_]+).*?</th>(.*?)</tr>', table, re.S):
        rows[name] = [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        ]
    return rows


def test_the_request_page_shows_metrics_against_the_version_it_replaces(client, desk, reviewer):
    registered_model, request = desk
    html = _page(client, reviewer, request)
    assert "Metrics of v2 against v1, now in the target" in html
    assert _cells(html) == {
        "auc": ["0.74", "0.78", "+0.04 (+5.41%) better"],
        "latency_ms": ["100", "119", "+19 (+19%) worse"],
    }
    assert 'class="num better"' in html and 'class="num worse"' in html
    assert 'href="/models/scorer/compare/?versions=1,2"' in html
    assert 'href="/models/scorer/versions/2/card/"' in html
    assert re.search(r'id="card-state">approved<', html)
    assert 'class="badge risk-medium"' in html


def test_the_request_page_names_who_may_still_approve(client, desk, reviewer, admin_user):
    registered_model, request = desk
    html = _page(client, reviewer, request)
    eligible = re.search(r'<p id="eligible">(.*?)</p>', html, re.S).group(1)
    names = re.findall(r"\b(alice|bob|carol|dave|admin)\b", eligible)
    # alice wrote v2, bob asked: neither may decide it.
    assert "carol" in names and "dave" in names
    assert "alice" not in names and "bob" not in names
    decide(reviewer, request)
    eligible = re.search(r'<p id="eligible">(.*?)</p>', _page(client, reviewer, request), re.S)
    assert "carol" not in eligible.group(1) and "dave" in eligible.group(1)  # carol counted


def test_the_page_marks_administrators_while_the_policy_still_needs_one(
    client, desk, reviewer, admin_user
):
    registered_model, request = desk
    Policy.objects.filter(registered_model=registered_model).update(admin_approval_required=True)
    html = _page(client, reviewer, request)
    eligible = re.search(r'<p id="eligible">(.*?)</p>', html, re.S).group(1)
    marked = re.findall(r'([\w-]+) <span class="badge">administrator</span>', eligible)
    assert admin_user.username in marked, eligible
    assert "carol" in eligible and "carol" not in marked and "dave" not in marked
    decide(admin_user, request)  # the administrator's approval counts
    eligible = re.search(r'<p id="eligible">(.*?)</p>', _page(client, reviewer, request), re.S)
    assert "administrator</span>" not in eligible.group(1)  # no longer needed
    assert admin_user.username not in eligible.group(1)


def test_the_page_says_so_when_nobody_else_may_approve(client, data_scientist, ml_engineer):
    registered_model = make_model(data_scientist, "lonely")
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    # Every holder of the approval right is barred: remove the reviewers' role right.
    for user in permissions.holders(Perm.APPROVE_PROMOTION, registered_model):
        user.groups.clear()
        user.is_superuser = False
        user.save()
    html = _page(client, ml_engineer, request)
    assert "Nobody else may approve this request" in html


def test_the_inbox_marks_blocked_requests_with_their_reason(client, desk, reviewer, ml_engineer):
    registered_model, ready = desk
    Policy.objects.filter(registered_model=registered_model).update(
        required_checks=["artifact", "signature"]
    )
    bare = make_version(
        registered_model.created_by, registered_model, metrics={"auc": 0.8}
    )  # no file, no signature
    blocked = ask(ml_engineer, bare, target="staging")
    client.force_login(reviewer)
    html = client.get("/inbox/").content.decode()
    row = re.search(rf'<tr id="request-{blocked.pk}">(.*?)</tr>', html, re.S).group(1)
    assert '<span class="badge blocked"' in row
    assert "Checks failing: Artifact stored with its SHA-256; Signature present" in row
    ok = re.search(rf'<tr id="request-{ready.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "blocked" not in ok
    assert 'class="badge risk-medium"' in ok and "<time datetime=" in ok


def test_the_inbox_costs_the_same_queries_however_large_the_registry(
    client, desk, reviewer, data_scientist, ml_engineer
):
    """The markers read the checks' facts for the whole page at once: as many queries for six
    requests (blocked and not, on models of other tiers) as for one."""
    client.force_login(reviewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/inbox/").status_code == 200
        return len(captured)

    count()
    before = count()
    for i in range(5):
        other = make_model(data_scientist, f"other-{i}", risk_tier=("low", "high")[i % 2])
        for _ in range(3):
            version = make_version(data_scientist, other, metrics={"auc": 0.5})
        ask(ml_engineer, version, target=("staging", "production")[i % 2])  # blocked or not
    html = client.get("/inbox/").content.decode()
    assert html.count('<tr id="request-') == 6 and 'class="badge blocked"' in html
    assert count() == before


def test_a_first_promotion_shows_the_candidates_metrics_alone(
    client, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "first")
    version = ready_version(data_scientist, registered_model, metrics={"auc": 0.9, "drift": 2.0})
    html = _page(client, reviewer, ask(ml_engineer, version))
    assert "Metrics of v1</caption>" in html and "(now)" not in html
    assert _cells(html) == {"auc": ["0.9"], "drift": ["2"]}
    assert html.count("↑ higher is better") == 1  # auc; nothing decides drift


def test_checks_read_in_bulk_answer_as_each_alone(data_scientist, ml_engineer, reviewer):
    """evaluate_many keeps each version's facts apart: the same outcomes as one at a time,
    for a ready version, a bare one and one against a holder with another signature."""
    registered_model = make_model(data_scientist, "bulk")
    ready = ready_version(data_scientist, registered_model)
    decide(reviewer, ask(ml_engineer, ready))
    bare = make_version(data_scientist, registered_model, metrics={})
    other = ready_version(
        data_scientist,
        registered_model,
        signature={**SIGNATURE, "inputs": [{"name": "z", "type": "double"}]},
    )
    holder = promotions.current_holder(registered_model, stage="production")
    cases = [(v, holder, ["artifact", "metrics"]) for v in (ready, bare, other)]
    cases.append((bare, None, []))
    assert readiness.evaluate_many(cases) == [readiness.evaluate(*case) for case in cases]
    outcomes = {o.name: o.passed for o in readiness.evaluate_many(cases)[1]}
    assert outcomes["artifact"] is False and outcomes["metrics"] is False
    assert {o.name: o.passed for o in readiness.evaluate_many(cases)[2]}[
        "signature_compatible"
    ] is False


def test_the_model_page_lists_its_open_requests(client, desk, reviewer, ml_engineer):
    registered_model, request = desk
    client.force_login(reviewer)
    html = client.get("/models/scorer/").content.decode()
    section = html[
        html.index('id="open-requests"') : html.index("</table>", html.index('id="open-requests"'))
    ]
    assert f'href="/requests/{request.pk}/"' in section and "v2" in section
    request.status = "cancelled"
    request.save(update_fields=["status"])
    html = client.get("/models/scorer/").content.decode()
    assert "No request is open." in html


def test_the_request_page_costs_the_same_queries_however_many_reviewers(
    client, desk, reviewer, roles
):
    """Marking administrators among those who may still approve reads the model's
    administrators once, not once per reviewer."""
    registered_model, request = desk
    Policy.objects.filter(registered_model=registered_model).update(admin_approval_required=True)
    client.force_login(reviewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/requests/{request.pk}/").status_code == 200
        return len(captured)

    count()
    before = count()
    for i in range(6):
        UserFactory(username=f"extra-reviewer-{i}").groups.add(roles["reviewer"])
    assert count() == before


def test_a_manager_appointed_by_the_creator_is_not_marked_administrator(
    client, desk, reviewer, data_scientist, admin_user, roles
):
    registered_model, request = desk
    Policy.objects.filter(registered_model=registered_model).update(admin_approval_required=True)
    by_creator, by_admin = UserFactory(username="mgr-creator"), UserFactory(username="mgr-admin")
    for user in (by_creator, by_admin):
        user.groups.add(roles["reviewer"])
    permissions.grant(
        Perm.MANAGE_ACCESS, registered_model, user=by_creator, granted_by=data_scientist
    )
    permissions.grant(Perm.MANAGE_ACCESS, registered_model, user=by_admin, granted_by=admin_user)
    eligible = re.search(r'<p id="eligible">(.*?)</p>', _page(client, reviewer, request), re.S)
    marked = re.findall(r'([\w-]+) <span class="badge">administrator</span>', eligible.group(1))
    assert "mgr-admin" in marked and "mgr-creator" not in marked
    assert "mgr-creator" in eligible.group(1)  # may approve, but is no administrator


def test_nobody_is_listed_for_a_request_on_a_deleted_model(desk, reviewer):
    registered_model, request = desk
    RegisteredModel.objects.filter(pk=registered_model.pk).update(deleted_at=timezone.now())
    request.registered_model.refresh_from_db()
    assert promotions.eligible_reviewers(request) == []


def test_reviewers_and_auditors_read_the_compliance_report_on_a_page(
    client, desk, reviewer, outsider
):
    """The admin's report, for whoever may view the model, with its export; hidden from the
    rest like the model itself."""
    registered_model, request = desk
    client.force_login(reviewer)
    page = client.get("/models/scorer/compliance/").content.decode()
    assert "Compliance report: scorer" in page and "Production history" in page
    assert 'id="compliance-export"' in page and "/api/v1/models/scorer/compliance/" in page
    assert "carol" in page  # her review of v1
    client.force_login(outsider)
    assert client.get("/models/scorer/compliance/").status_code == 404
    client.force_login(reviewer)
    assert 'href="/models/scorer/compliance/"' in client.get("/models/scorer/").content.decode()
