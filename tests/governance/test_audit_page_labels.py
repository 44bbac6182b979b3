"""The audit log page in people's words (issue 17, item 3): a label for every action, a model
column, objects and details by name (no internal ids, no Python reprs), timestamps on one
line, filters that stay in the URL; the stored events and the exports are unchanged."""

from __future__ import annotations

import html as html_lib
import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import AuditEvent
from governance.audit_display import action_label, shown

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("demo", "--no-serve", stdout=io.StringIO())


def _rows(client, **params) -> list[list[str]]:
    response = client.get("/audit/", params)
    assert response.status_code == 200
    page = response.content.decode()
    table = page[page.index('<table class="audit">') : page.index("</table>")]
    return [
        [
            html_lib.unescape(re.sub(r"<[^>]+>", " ", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    ]


@pytest.mark.parametrize(
    ("action", "label"),
    [
        ("promotion.requested", "Promotion requested"),
        ("registered_model.tag_set", "Model tag set"),
        ("version.stage_changed", "Version moved to another stage"),
        ("gate.refused", "Refused by the gate"),
        ("deployment.created", "Deployment created"),
        ("something_new.happened_here", "Something new happened here"),
        ("plain", "Plain"),
    ],
)
def test_every_action_has_a_label(action, label):
    assert action_label(action) == label


def test_the_demos_audit_log_reads_as_names_and_plain_text(client, demo, admin_user):
    client.force_login(admin_user)
    seen_actions = set()
    for page in range(1, 8):
        rows = _rows(client, page=page)
        for _number, when, _actor, action, _model, target, details in rows:
            label, _, code = action.rpartition("  ")
            seen_actions.add(code.strip())
            assert label.strip() and label.strip() != code.strip(), action
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", when), when
            # Deployments and aliases by model, version and name, never by internal id.
            assert not re.match(r"^\d+ →|^\d+@", target), target
            for text in (target, details):
                assert not re.search(r"\[\s*'|\{\s*'|\bNone\b|\bTrue\b|\bFalse\b", text), text
            assert "_registeredmodel" not in details, details  # permissions by their labels
    # The demo records the families a reviewer reads most; each was shown.
    for action in (
        "promotion.requested",
        "promotion.applied",
        "deployment.created",
        "alias.created",
        "card.approved",
        "access.reviewed",
    ):
        assert action in seen_actions, action


def test_deployments_aliases_and_lists_in_plain_words(client, demo, admin_user):
    client.force_login(admin_user)
    rows = _rows(client, model="credit-risk-classifier", action="deployment.")
    number, when, actor, action, model, target, details = rows[0]
    assert model == "credit-risk-classifier"
    assert re.fullmatch(r"credit-risk-classifier v\d+ → \w+", target), target
    rows = _rows(client, model="credit-risk-classifier", action="promotion.approved")
    # Each detail's label beside its value (PostgreSQL's JSONB keeps keys in its own order).
    assert re.search(r"approvers\s+carol, dave\b", rows[0][6]), rows[0][6]
    assert re.search(r"needed\s+2\b", rows[0][6]), rows[0][6]
    events = list(AuditEvent.objects.filter(action="version.stage_changed").order_by("sequence"))
    words = dict(shown(events)[-1].details)
    assert words["to"] in ("staging", "production") and not words["to"].startswith("v")
    archived = [dict(w.details)["archived versions"] for w in shown(events)]
    assert any(re.fullmatch(r"v\d+(, v\d+)*", a) for a in archived), archived


def test_filters_stay_in_the_pages_links_and_the_queries_stay_fixed(client, demo, admin_user):
    client.force_login(admin_user)
    page = client.get("/audit/", {"action": "promotion.", "model": "credit-risk-classifier"})
    text = page.content.decode()
    assert 'value="promotion."' in text and 'value="credit-risk-classifier"' in text
    if "Next</a>" in text:
        assert re.search(r'href="\?[^"]*action=promotion\.[^"]*page=2"', text)

    def count(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/audit/", params).status_code == 200
        return len(captured)

    # Names of records events refer to by id (features, datasets, code) are read once per
    # page, one query per kind present on it: at most three more, however many events.
    count(action="alias.")
    plain = count(action="alias.")
    assert plain <= count(action="dataset.") <= plain + 3
    assert plain <= count(action="training_run.") <= plain + 3
    assert count() <= plain + 3


@pytest.mark.parametrize(
    "details",
    [
        {"datasets": 5},
        {"datasets": 1.5},
        {"datasets": [[True, "training"], [2**70, "test"], "x"]},
        {"features": [2**70, -1, True, "f"]},
        {"code_ref": 2**64},
        {"version": True, "environment": "prod"},
        {"deep": [[[[[[[["bottom"]]]]]]]]},
        {"changes": {"x": {"from": None, "to": [1, {"a": False}]}}},
        {"note": "<script>alert(1)</script>" * 20},
    ],
)
def test_odd_details_are_shown_without_failing(client, admin_user, details):
    """Events keep whatever details they were recorded with; the page words any shape."""
    from core import audit
    from core.actors import Actor

    audit.record(
        actor=Actor(user=admin_user, channel="cli"),
        action="deployment.created",
        target=None,
        details=details,
    )
    client.force_login(admin_user)
    response = client.get("/audit/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>alert" not in page
    (words,) = shown([AuditEvent.objects.latest("sequence")])
    assert all(len(text) <= 160 for _, text in words.details)
    assert "vTrue" not in words.object


def test_the_access_page_names_permissions_in_words(client, data_scientist, viewer, admin_user):
    from core import permissions
    from core.permissions import Perm
    from tests.factories import make_model

    registered_model = make_model(data_scientist, "worded")
    permissions.grant(Perm.APPROVE_PROMOTION, registered_model, user=viewer, granted_by=admin_user)
    client.force_login(admin_user)
    page = client.get("/models/worded/access/").content.decode()
    shown_tags = re.findall(r'<span class="tag" title="([a-z_]+)">([^<]+)</span>', page)
    assert ("approve_promotion", "approve promotion") in shown_tags
    assert ("view_registeredmodel", "view") in shown_tags
    assert not re.search(r">\s*\w+_registeredmodel\s*<", page)  # no codename shown as text


def test_packaging_jobs_are_named_by_what_and_where(data_scientist):
    from tests.factories import make_artifact, make_model, make_version

    version = make_version(data_scientist, make_model(data_scientist, "churn"))
    make_artifact(data_scientist, version)  # every file is inspected: job.started
    event = AuditEvent.objects.filter(action="job.started").latest("sequence")
    assert "(queued)" in event.target_label  # what was recorded: the status back then
    assert shown([event])[0].object == f"churn v1: Inspect job #{event.target_id}"
