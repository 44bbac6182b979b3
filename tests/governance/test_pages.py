"""The reviewer dashboard through its pages: what each page shows to whom, the forms' field
errors (nothing saved, no 500), buttons only for those who may use them (and the server
refusing forged posts anyway), and a number of queries that does not grow with the data."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cards import services as card_services
from cards.models import ModelCard
from core.models import AuditEvent
from governance import content
from governance.models import PromotionRequest, Review
from registry.models import ModelVersion
from tests.factories import actor_for, make_model, make_version, ready_version, superuser
from tests.governance.test_promotions import ask, decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(data_scientist, ml_engineer, reviewer):
    """churn: v1 in production (approved by the reviewer), v2 asked for production."""
    registered_model = make_model(data_scientist, "churn")
    v1 = ready_version(data_scientist, registered_model, metrics={"auc": 0.81}, params={"depth": 4})
    decide(reviewer, ask(ml_engineer, v1))
    v2 = ready_version(data_scientist, registered_model, metrics={"auc": 0.86}, params={"depth": 6})
    return registered_model, v1, v2, ask(ml_engineer, v2, justification="Better AUC")


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200, url
    return len(ctx.captured_queries)


def test_home_shows_what_waits_for_each_user(client, story, reviewer, ml_engineer):
    *_, pending = story
    client.force_login(reviewer)
    html = client.get("/").content.decode()
    awaiting = html[html.index('id="awaiting"') : html.index('id="mine"')]
    assert f"#{pending.pk}" in awaiting and "churn" in html
    assert re.search(r'id="count-awaiting">1<', html)
    client.force_login(ml_engineer)
    html = client.get("/").content.decode()
    awaiting = html[html.index('id="awaiting"') : html.index('id="mine"')]
    assert "Nothing waits for your review." in awaiting  # requesters do not review their own
    assert f"#{pending.pk}" in html[html.index('id="mine"') :]


def test_models_page_filters_and_hides_what_the_user_may_not_see(client, data_scientist, outsider):
    make_model(data_scientist, "alpha", tags={"team": "risk"}, risk_tier="high")
    make_model(data_scientist, "beta", tags={"team": "growth"})
    client.force_login(data_scientist)
    html = client.get("/models/", {"tag": "team=risk"}).content.decode()
    assert ">alpha<" in html and ">beta<" not in html
    assert '<a href="/models/" aria-current="page">Models</a>' in html
    html = client.get(
        "/models/", {"risk_tier": "medium", "owner": data_scientist.username}
    ).content.decode()
    assert ">beta<" in html and ">alpha<" not in html
    client.force_login(outsider)
    html = client.get("/models/").content.decode()
    assert ">alpha<" not in html and "No models match." in html


def test_compare_highlights_differences_and_charts_the_metrics(client, story, viewer):
    client.force_login(viewer)
    html = client.get("/models/churn/compare/", {"v": ["1", "2"]}).content.decode()
    assert html.count('class="differs"') == 2  # auc and depth differ
    assert "+0.05" in html and "(+6.17%)" in html and "num better" in html  # auc: higher is better
    assert html.count("<rect ") == 2 and "v2: 0.86" in html
    r = client.get("/models/churn/compare/", {"v": ["1"]})
    assert r.status_code == 400 and "Compare 2" in r.content.decode()
    r = client.get("/models/churn/compare/", {"v": ["1", "9"]})
    assert r.status_code == 400 and "Version 9" in r.content.decode()


def test_request_form_shows_the_checklist_and_field_errors(client, story, ml_engineer, reviewer):
    registered_model, v1, v2, pending = story
    client.force_login(ml_engineer)
    html = client.get("/requests/new/", {"model": "churn", "version": "2"}).content.decode()
    assert "Readiness checks" in html and "Artifact stored with its SHA-256" in html
    assert 'class="pass"' in html
    fragment = client.get(
        "/requests/new/checks/", {"model": "churn", "version": "1", "target": "staging"}
    ).content.decode()
    assert "an empty target" in fragment and "<ul" in fragment
    before = PromotionRequest.objects.count()
    r = client.post("/requests/new/", {"model": "churn", "version": "2", "target": "production"})
    assert r.status_code == 400 and 'id="justification-error"' in r.content.decode()
    r = client.post(
        "/requests/new/",
        {"model": "churn", "version": "2", "target": "production", "justification": " \n "},
    )
    assert r.status_code == 400 and "Say why this version should move" in r.content.decode()
    r = client.post(
        "/requests/new/",
        {"model": "churn", "version": "2", "target": "production", "justification": "Better."},
    )
    assert r.status_code == 400  # a duplicate of the open request
    assert (
        re.search(
            r'<p id="version-error" class="error">Request #\d+ for this version', r.content.decode()
        )
        or "still open" in r.content.decode()
    )
    r = client.post("/requests/new/", {"model": "churn", "version": "2", "target": "no way!"})
    html = r.content.decode()
    assert r.status_code == 400 and 'id="target-error"' in html and 'aria-invalid="true"' in html
    for version in ("99", "two", "\u0661", "9" * 25):
        r = client.post(
            "/requests/new/",
            {"model": "churn", "version": version, "target": "staging", "justification": "x"},
        )
        assert r.status_code == 400 and 'id="version-error"' in r.content.decode()
    assert PromotionRequest.objects.count() == before
    r = client.post(
        "/requests/new/",
        {
            "model": "churn",
            "version": "2",
            "target": "staging",
            "justification": "Try it in staging",
        },
    )
    assert r.status_code == 302
    created = PromotionRequest.objects.latest("pk")
    assert r["Location"] == f"/requests/{created.pk}/" and created.target_stage == "staging"
    client.force_login(reviewer)  # may view but not request
    assert client.get("/requests/new/", {"model": "churn"}).status_code == 403


def test_only_eligible_reviewers_see_buttons_and_forged_posts_are_refused(
    client, story, reviewer, ml_engineer, data_scientist, viewer
):
    *_, pending = story
    url = f"/requests/{pending.pk}/"
    for user in (ml_engineer, data_scientist, viewer):
        client.force_login(user)
        html = client.get(url).content.decode()
        assert 'value="approve"' not in html and 'id="review-refusal"' in html
    client.force_login(ml_engineer)
    r = client.post(f"{url}review/", {"decision": "approve", "comment": "mine"})
    assert r.status_code == 403 and not Review.objects.filter(request=pending).exists()
    client.force_login(viewer)
    assert client.post(f"{url}review/", {"decision": "approve"}).status_code == 403

    client.force_login(reviewer)
    html = client.get(url).content.decode()
    assert 'value="approve"' in html and "Better AUC" in html
    r = client.post(f"{url}review/", {"decision": "maybe", "comment": "hm"}, follow=True)
    assert "decision must be one of" in r.content.decode()
    assert client.post(f"{url}apply/").status_code == 403  # reviewers do not apply
    client.force_login(ml_engineer)
    r = client.post(f"{url}apply/", follow=True)  # not approved yet: a message, no 500
    assert "not approved yet" in r.content.decode()
    client.force_login(reviewer)
    r = client.post(f"{url}review/", {"decision": "reject", "comment": ""}, follow=True)
    html = r.content.decode()
    assert 'id="comment-error"' in html and not Review.objects.filter(request=pending).exists()
    r = client.post(f"{url}review/", {"decision": "approve", "comment": "ship it"}, follow=True)
    assert "Recorded: approve." in r.content.decode()
    pending.refresh_from_db()
    assert pending.status == "applied"
    html = r.content.decode()
    assert "Applied" in html and "ship it" in html and 'value="approve"' not in html
    assert ModelVersion.objects.get(version=2).stage == "production"
    assert ModelVersion.objects.get(version=1).stage == "archived"


def test_the_requester_may_cancel_from_the_page(client, story, ml_engineer, reviewer):
    *_, pending = story
    client.force_login(reviewer)
    assert "Cancel request" not in client.get(f"/requests/{pending.pk}/").content.decode()
    assert client.post(f"/requests/{pending.pk}/cancel/").status_code == 403
    client.force_login(ml_engineer)
    r = client.post(f"/requests/{pending.pk}/cancel/", {"reason": "superseded"}, follow=True)
    assert "Request cancelled." in r.content.decode()
    pending.refresh_from_db()
    assert pending.status == "cancelled"


def test_inbox_and_request_list(client, story, reviewer, ml_engineer):
    *_, pending = story
    client.force_login(reviewer)
    assert f"#{pending.pk}</a>" in client.get("/inbox/").content.decode()
    client.force_login(ml_engineer)
    assert "Nothing waits for your review." in client.get("/inbox/").content.decode()
    html = client.get("/requests/", {"mine": "1", "status": "pending"}).content.decode()
    assert f"#{pending.pk}</a>" in html


def test_audit_page_filters_links_and_scopes(client, story, reviewer, outsider, data_scientist):
    *_, pending = story
    make_model(data_scientist, "secret")
    client.force_login(reviewer)
    html = client.get("/audit/", {"model": "churn", "action": "promotion."}).content.decode()
    assert ">promotion.requested</code>" in html and ">version.created</code>" not in html
    assert f'href="/requests/{pending.pk}/"' in html
    html = client.get("/audit/", {"action": "version.created"}).content.decode()
    assert 'href="/models/churn/versions/2/"' in html
    r = client.get("/audit/", {"since": "yesterday"})
    assert r.status_code == 400 and 'id="since-error"' in r.content.decode()
    client.force_login(outsider)
    html = client.get("/audit/").content.decode()
    assert "churn" not in html and "No events match." in html


def test_access_page_grants_and_revokes(client, story, data_scientist, outsider):
    admin_user = superuser()
    client.force_login(admin_user)
    html = client.get("/models/churn/access/").content.decode()
    assert "Roles (everywhere)" in html and "reviewer" in html
    r = client.post(
        "/models/churn/access/",
        {"who": "nobody-here", "perm": "view_registeredmodel", "action": "grant"},
    )
    assert r.status_code == 400 and 'id="who-error"' in r.content.decode()
    r = client.post(
        "/models/churn/access/", {"who": outsider.username, "perm": "", "action": "grant"}
    )
    assert r.status_code == 400 and 'id="perm-error"' in r.content.decode()
    r = client.post(
        "/models/churn/access/",
        {"who": outsider.username, "perm": "view_registeredmodel", "action": "x"},
    )
    assert r.status_code == 400 and "Choose Grant or Revoke." in r.content.decode()
    r = client.post(
        "/models/churn/access/",
        {"who": outsider.username, "perm": "view_registeredmodel", "action": "grant"},
        follow=True,
    )
    assert f"Granted view to {outsider.username}." in r.content.decode()
    client.force_login(outsider)
    assert client.get("/models/churn/").status_code == 200
    assert "Manage access" not in client.get("/models/churn/").content.decode()
    client.force_login(admin_user)
    client.post(
        "/models/churn/access/",
        {"who": outsider.username, "perm": "view_registeredmodel", "action": "revoke"},
    )
    client.force_login(outsider)
    assert client.get("/models/churn/").status_code == 404
    assert AuditEvent.objects.filter(action__in=("access.granted", "access.revoked")).count() == 2


def test_pages_use_a_bounded_number_of_queries(client, data_scientist, ml_engineer, reviewer):
    def grow(name: str, versions: int) -> PromotionRequest:
        registered_model = make_model(data_scientist, name, tags={"team": "x"})
        made = [
            ready_version(
                data_scientist,
                registered_model,
                metrics={"auc": 0.5 + i / 100},
                params={"depth": i},
            )
            for i in range(versions)
        ]
        decide(reviewer, ask(ml_engineer, made[0]))
        return ask(ml_engineer, made[-1])

    small = grow("small", 2)
    client.force_login(reviewer)
    urls = [
        "/",
        "/models/",
        "/models/small/",
        "/models/small/versions/2/",
        "/models/small/compare/",
        f"/requests/{small.pk}/",
        "/inbox/",
        "/requests/",
        "/audit/",
    ]
    before = {url: _queries(client, url) for url in urls}
    for i in range(4):
        grow(f"more-{i}", 6)
    for _ in range(3, 7):
        make_version(
            data_scientist,
            ModelVersion.objects.get(registered_model__name="small", version=1).registered_model,
        )
    after = {url: _queries(client, url) for url in urls}
    assert after == before
    assert max(after.values()) <= 30


def test_request_page_spells_out_schema_changes(
    client, story, data_scientist, ml_engineer, reviewer
):
    registered_model, *_ = story
    changed = {
        "inputs": [
            {"name": "age", "type": "double"},
            {"name": "income", "type": "double"},
            {"name": "tenure", "type": "long"},
        ],
        "outputs": [{"name": "score", "type": "double"}],
    }
    v3 = ready_version(data_scientist, registered_model, signature=changed)
    request = ask(ml_engineer, v3, target="staging")  # staging is empty: nothing to diff
    client.force_login(reviewer)
    assert "Inputs against" not in client.get(f"/requests/{request.pk}/").content.decode()
    request = ask(ml_engineer, v3)
    html = client.get(f"/requests/{request.pk}/").content.decode()
    assert "Inputs against v1" in html
    assert "Removed: <code>region</code>" in html
    assert "Added: <code>tenure</code> (required)" in html
    assert "Changed: <code>age</code> type long → double" in html
    assert 'class="fail"' in html or 'class="warn"' in html  # signature_compatible fails


def test_the_request_page_shows_the_digest_and_approvals_a_card_change_voided(
    client, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(
        data_scientist, "scorer", risk_tier="high"
    )  # two approvals, card required
    version = ready_version(data_scientist, registered_model)
    request = ask(ml_engineer, version)
    decide(reviewer, request)
    before = content.digest(version)
    client.force_login(reviewer)
    html = client.get(f"/requests/{request.pk}/").content.decode()
    assert f'title="{before}"' in html and 'id="voided-approvals"' not in html

    card = ModelCard.objects.get(version=version)  # the author edits the card meanwhile
    card_services.card_update(
        actor=actor_for(data_scientist),
        card=card,
        changes={"sections": {"limitations": "Also: winter data."}},
    )
    html = client.get(f"/requests/{request.pk}/").content.decode()
    voided = html[html.index('id="voided-approvals"') :]
    assert "carol" in voided[:300] and "must approve again" in voided[:300]
    assert f'title="{content.digest(version)}"' in html and f'title="{before}"' in html
    event = AuditEvent.objects.get(action="promotion.approvals_voided")
    assert event.details["voided"] == ["carol"] and event.target_id == str(request.pk)


def test_a_gate_refusal_on_a_page_is_a_403_and_an_audit_event_with_the_reason(
    client, story, data_scientist
):
    registered_model, *_ = story
    root = superuser()
    own = ask(root, ready_version(data_scientist, registered_model), target="staging")
    client.force_login(root)  # may approve anything, but not a request of their own
    r = client.post(f"/requests/{own.pk}/review/", {"decision": "approve"})
    assert r.status_code == 403
    event = AuditEvent.objects.get(action="gate.refused")
    assert event.actor == root and event.registered_model_name == "churn"
    assert event.details["code"] == "separation_of_duties"
    assert "another reviewer" in event.details["reason"]
    assert not Review.objects.filter(request=own).exists()
