"""The card API end to end: edit, complete, submit, approve by another user, export in each
format, import, and the promotion readiness check seeing the approval."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard as HubCard

from core.models import AuditEvent
from tests.factories import FULL_CARD, SIGNATURE, make_artifact, make_model, make_version

pytestmark = pytest.mark.django_db
C = "/api/v1/models/churn/versions/1/card/"


@pytest.fixture
def version(data_scientist):
    registered_model = make_model(data_scientist, "churn", risk_tier="medium")
    v = make_version(
        data_scientist,
        registered_model,
        signature=SIGNATURE,
        metrics=[{"name": "auc", "value": 0.91, "dataset": "holdout", "split": "test"}],
    )
    make_artifact(data_scientist, v)
    return v


def test_the_whole_journey(api, data_scientist, reviewer, ml_engineer, version):
    author, approver = api(data_scientist), api(reviewer)
    card = author.get(C).json()
    assert card["status"] == "draft" and card["revision"] == 1
    assert card["completeness"]["percent"] == 0
    assert card["completeness"]["required"] == [
        "intended_use",
        "out_of_scope",
        "training_data",
        "limitations",
    ]
    r = author.patch(C, {**FULL_CARD, "base_revision": 1, "note": "first"}, format="json")
    assert r.status_code == 200 and r.json()["completeness"]["percent"] == 100
    r = author.post(f"{C}submit/")
    assert r.status_code == 200 and r.json()["status"] == "in_review"
    assert r.json()["review"]["why_you_may_not_review"]
    r = approver.post(f"{C}reviews/", {"decision": "approve", "comment": "complete"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["review"]["approved_by"] == ["carol"]

    exported = author.get(f"{C}export.json")
    assert json.loads(exported.content)["status"] == "approved"
    markdown = author.get(f"{C}export.md").content.decode()
    assert "## Intended use" in markdown
    HubCard(author.get(f"{C}export.hf").content.decode())

    request = (
        api(ml_engineer)
        .post(
            "/api/v1/promotion-requests/",
            {"model": "churn", "version": 1, "target_stage": "production"},
            format="json",
        )
        .json()
    )
    check = next(c for c in request["evaluation"]["checks"] if c["name"] == "card_approved")
    assert check["passed"] and not check["required"]  # medium risk: advice, not a gate
    actions = list(
        AuditEvent.objects.filter(target_type="cards.modelcard")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "card.created",
        "card.updated",
        "card.submitted",
        "card.reviewed",
        "card.approved",
    ]


def test_revisions_diff_restore_and_import(api, data_scientist, version):
    client = api(data_scientist)
    client.patch(C, {"sections": {"caveats": "Old."}}, format="json")
    client.patch(C, {"sections": {"caveats": "New."}}, format="json")
    revisions = client.get(f"{C}revisions/").json()["revisions"]
    assert [r["number"] for r in revisions] == [3, 2, 1]
    diff = client.get(f"{C}diff/", {"from": 2, "to": 3}).json()["changes"]
    assert diff == [
        {
            "field": "sections.caveats",
            "title": "Caveats",
            "lines": ["@@ -1 +1 @@", "-Old.", "+New."],
        }
    ]
    r = client.post(f"{C}revisions/2/restore/")
    assert r.json()["revision"] == 4 and r.json()["sections"]["caveats"] == "Old."
    readme = (
        "---\nlicense: mit\nwidget: []\n---\n# X\n\n## Limitations\n\nSmall data.\n\n"
        "## Citation\n\n@misc{x}\n"
    )
    r = client.post(f"{C}import/", {"readme": readme}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["sections"]["limitations"] == "Small data."
    assert body["metadata"]["license"] == "mit"
    assert body["import_report"]["unmapped_metadata"] == ["widget"]
    assert body["import_report"]["unmapped_sections"] == ["Citation"]


def test_errors_are_4xx_with_fields_and_change_nothing(api, data_scientist, reviewer, version):
    client = api(data_scientist)
    cases = [
        (
            client.patch(C, {"sections": {"intended_use": "x" * 20_001}}, format="json"),
            400,
            "validation_failed",
        ),
        (client.patch(C, {"sections": {"vibes": "x"}}, format="json"), 400, "unknown_field"),
        (client.patch(C, {"status": "approved"}, format="json"), 400, "unknown_field"),
        (
            client.patch(C, {"base_revision": 9, "sections": {"caveats": "x"}}, format="json"),
            409,
            "card_changed",
        ),
        (client.post(f"{C}submit/"), 409, "card_incomplete"),
        (
            api(reviewer).post(f"{C}reviews/", {"decision": "approve"}, format="json"),
            409,
            "card_not_in_review",
        ),
        (client.get(f"{C}diff/", {"from": "one"}), 400, "validation_failed"),
        (client.get(f"{C}diff/", {"from": 1, "to": 5}), 400, "revision_not_found"),
        (client.post(f"{C}revisions/9/restore/"), 400, "revision_not_found"),
        (client.get(f"{C}export.pdf"), 404, "unknown_format"),
        (
            client.post(f"{C}import/", {"readme": "---\n: [\n---\n"}, format="json"),
            400,
            "validation_failed",
        ),
        (client.get("/api/v1/models/churn/versions/7/card/"), 404, "version_not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    assert client.get(C).json()["revision"] == 1
