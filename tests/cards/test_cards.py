"""Model cards: a card per version copied forward, revisions with diff and restore, review
under the model's policy, completeness per risk tier, exports and imports, safety."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from huggingface_hub import ModelCard as HubCard

from cards import content as card_content
from cards import formats, services
from cards.models import ModelCard
from core.errors import Conflict, Forbidden, ValidationFailed
from core.models import AuditEvent
from governance import promotions
from tests.factories import (
    FULL_CARD,
    UserFactory,
    actor_for,
    make_artifact,
    make_model,
    make_version,
)

pytestmark = pytest.mark.django_db
SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2] / "cards" / "schema" / "model-card-v1.schema.json"
    ).read_text()
)


@pytest.fixture
def registered_model(data_scientist):
    return make_model(data_scientist, "churn", risk_tier="high")


def card_of(version) -> ModelCard:
    return ModelCard.objects.get(version=version)


def edit(user, version, **changes) -> ModelCard:
    return services.card_update(actor=actor_for(user), card=card_of(version), changes=changes)


def test_every_version_gets_a_card_copied_from_the_previous_one(registered_model, data_scientist):
    v1 = make_version(data_scientist, registered_model)
    assert card_of(v1).content == card_content.empty()
    edit(data_scientist, v1, sections={"intended_use": "Churn scoring."})
    v2 = make_version(data_scientist, registered_model)
    card = card_of(v2)
    assert card.content["sections"]["intended_use"] == "Churn scoring."
    assert card.status == "draft" and card.revision == 1
    assert card.revisions.get().note == "Copied from version 1's card"
    assert AuditEvent.objects.filter(action="card.created").count() == 2


def test_each_save_is_a_revision_with_diff_and_restore(registered_model, data_scientist):
    v = make_version(data_scientist, registered_model)
    edit(data_scientist, v, sections={"intended_use": "First line.\nSecond line."})
    edit(
        data_scientist,
        v,
        sections={"intended_use": "First line.\nChanged line."},
        metadata={"tags": ["tabular"]},
    )
    card = card_of(v)
    assert card.revision == 3 and card.revisions.count() == 3
    edit(data_scientist, v, sections={"intended_use": "First line.\nChanged line."})
    assert card_of(v).revision == 3  # an unchanged save makes no revision
    changes = {c["field"]: c for c in services.diff(card, 2, 3)}
    assert set(changes) == {"sections.intended_use", "metadata.tags"}
    assert "-Second line." in changes["sections.intended_use"]["lines"]
    assert "+Changed line." in changes["sections.intended_use"]["lines"]
    services.card_restore(actor=actor_for(data_scientist), card=card, number=2)
    card = card_of(v)
    assert card.revision == 4 and card.content["sections"]["intended_use"].endswith("Second line.")
    assert card.revisions.get(number=4).note == "Restored revision 2"
    with pytest.raises(Conflict):
        services.card_restore(actor=actor_for(data_scientist), card=card, number=4)
    with pytest.raises(ValidationFailed):
        services.diff(card, 1, 99)


def test_a_stale_editor_cannot_overwrite_a_newer_save(registered_model, data_scientist):
    v = make_version(data_scientist, registered_model)
    card = card_of(v)
    services.card_update(
        actor=actor_for(data_scientist),
        card=card,
        changes={"sections": {"caveats": "mine"}},
        base_revision=1,
    )
    with pytest.raises(Conflict) as exc:
        services.card_update(
            actor=actor_for(data_scientist),
            card=card,
            changes={"sections": {"caveats": "theirs"}},
            base_revision=1,
        )
    assert exc.value.code == "card_changed" and exc.value.extra["revision"] == 2
    assert card_of(v).content["sections"]["caveats"] == "mine"


def test_bad_input_is_refused_with_the_field_and_changes_nothing(registered_model, data_scientist):
    v = make_version(data_scientist, registered_model)
    for changes, field in (
        ({"sections": {"intended_use": "x" * 20_001}}, "sections.intended_use"),
        ({"sections": {"nonsense": "x"}}, "sections.nonsense"),
        ({"metadata": {"tags": "not-a-list"}}, "metadata.tags"),
        ({"metadata": {"license": "a\x00b"}}, "metadata.license"),
        ({"model_details": {"authors": ["x"] * 51}}, "model_details.authors"),
    ):
        with pytest.raises(ValidationFailed) as exc:
            edit(data_scientist, v, **changes)
        assert field in exc.value.fields, changes
    with pytest.raises(ValidationFailed):
        services.card_update(
            actor=actor_for(data_scientist), card=card_of(v), changes={"extra": {}}
        )
    assert card_of(v).revision == 1


def test_completeness_follows_the_risk_tier(data_scientist):
    low = make_model(data_scientist, "low-model", risk_tier="low")
    critical = make_model(data_scientist, "crit-model", risk_tier="critical")
    one = {"sections": {"intended_use": "Forecasting."}}
    for model, missing in ((low, []), (critical, len(card_content.SECTION_KEYS) - 1)):
        card = edit(data_scientist, make_version(data_scientist, model), **one)
        done = card_content.completeness(card.content, services.required_sections(card))
        assert (len(done.missing) if missing else done.missing) == missing
    card = card_of(critical.versions.get())
    with pytest.raises(Conflict) as exc:
        services.card_submit(actor=actor_for(data_scientist), card=card)
    assert exc.value.code == "card_incomplete" and "Caveats" in exc.value.message
    low_card = card_of(low.versions.get())
    assert (
        services.card_submit(actor=actor_for(data_scientist), card=low_card).status == "in_review"
    )


def test_review_follows_the_policy_and_separation_of_duties(
    registered_model, data_scientist, reviewer, roles
):
    v = make_version(data_scientist, registered_model)
    edit(data_scientist, v, **FULL_CARD)
    card = services.card_submit(actor=actor_for(data_scientist), card=card_of(v))
    with pytest.raises(Forbidden):  # data scientists do not approve
        services.card_review(actor=actor_for(data_scientist), card=card, decision="approve")
    editor = UserFactory(username="editor-reviewer")
    editor.groups.add(roles["reviewer"], roles["data scientist"])
    services.card_update(
        actor=actor_for(editor), card=card, changes={"sections": {"caveats": "One more caveat."}}
    )
    card = services.card_submit(actor=actor_for(editor), card=card_of(v))
    with pytest.raises(Forbidden) as exc:  # the last editor may not approve
        services.card_review(actor=actor_for(editor), card=card, decision="approve")
    assert exc.value.code == "separation_of_duties"
    card = services.card_review(actor=actor_for(reviewer), card=card, decision="approve")
    assert card.status == "in_review"  # high risk: two approvals
    dave = UserFactory(username="dave")
    dave.groups.add(roles["reviewer"])
    card = services.card_review(actor=actor_for(dave), card=card, decision="approve")
    assert card.status == "approved"
    # Editing an approved card returns it to draft, and old approvals no longer count.
    card = edit(data_scientist, v, sections={"caveats": "Changed after approval."})
    assert card.status == "draft" and card.approved_at is None
    assert services.approvals(card)[0] == []


def test_request_changes_needs_a_comment_and_sends_the_card_back(
    registered_model, data_scientist, reviewer
):
    v = make_version(data_scientist, registered_model)
    edit(data_scientist, v, **FULL_CARD)
    card = services.card_submit(actor=actor_for(data_scientist), card=card_of(v))
    with pytest.raises(ValidationFailed):
        services.card_review(actor=actor_for(reviewer), card=card, decision="request_changes")
    card = services.card_review(
        actor=actor_for(reviewer),
        card=card,
        decision="request_changes",
        comment="Name the regions.",
    )
    assert card.status == "changes_requested"
    with pytest.raises(Conflict):
        services.card_review(actor=actor_for(reviewer), card=card, decision="approve")
    assert services.card_submit(actor=actor_for(data_scientist), card=card).status == "in_review"


def test_promotion_readiness_sees_the_card_approval(
    registered_model, data_scientist, ml_engineer, reviewer, roles
):
    from tests.factories import SIGNATURE

    v = make_version(data_scientist, registered_model, signature=SIGNATURE)
    make_artifact(data_scientist, v)
    request = promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=v, target_stage="production"
    )
    check = next(c for c in promotions.evaluate(request).checks if c.name == "card_approved")
    assert not check.passed and check.required and check.message == "The model card is draft."
    from tests.factories import approve_card

    approve_card(v)
    check = next(c for c in promotions.evaluate(request).checks if c.name == "card_approved")
    assert check.passed


@pytest.fixture
def finished(registered_model, data_scientist):
    v = make_version(
        data_scientist,
        registered_model,
        metrics=[
            {"name": "auc", "value": 0.91, "dataset": "holdout", "split": "test"},
            {"name": "f1", "value": 0.7, "dataset": "holdout", "split": "test"},
            {"name": "auc", "value": 0.95, "dataset": "train-2026", "split": "train"},
        ],
    )
    edit(
        data_scientist,
        v,
        **FULL_CARD,
        metadata={
            "license": "apache-2.0",
            "languages": ["en", "de"],
            "datasets": ["holdout"],
            "tags": ["tabular", "churn"],
            "base_model": "",
            "library_name": "sklearn",
            "pipeline_tag": "tabular-classification",
        },
    )
    edit(
        data_scientist,
        v,
        sections={"limitations": "Sparse history.\n\n### Regions\n\nNorth is under-represented."},
    )
    return card_of(v)


def test_json_export_follows_the_published_schema(finished):
    doc = formats.to_json(finished)
    jsonschema.validate(doc, SCHEMA)
    assert doc["model_details"]["name"] == "churn" and doc["model_details"]["version"] == 1
    metrics = doc["quantitative_analysis"]["performance_metrics"]
    assert {"type": "auc", "value": 0.91, "dataset": "holdout", "split": "test"} in metrics


def test_hugging_face_readme_parses_and_round_trips(finished, data_scientist, registered_model):
    readme = formats.to_hf_readme(finished)
    hub = HubCard(readme)  # raises on invalid metadata or model-index
    data = hub.data.to_dict()
    assert data["license"] == "apache-2.0" and data["language"] == ["en", "de"]
    results = hub.data.eval_results
    assert {(r.dataset_name, r.dataset_split, r.metric_type, r.metric_value) for r in results} >= {
        ("holdout", "test", "auc", 0.91),
        ("train-2026", "train", "auc", 0.95),
    }
    changes, report = formats.from_hf_readme(readme)
    assert report["unmapped_sections"] == [] and report["unmapped_metadata"] == []
    assert report["skipped_generated"] == ["Metrics"]
    fresh = make_version(data_scientist, registered_model)
    card = services.card_update(
        actor=actor_for(data_scientist),
        card=card_of(fresh),
        changes={
            "sections": {k: "" for k in card_content.SECTION_KEYS},
            "metadata": card_content.empty()["metadata"],
            "model_details": card_content.empty()["model_details"],
        },
    )
    card = services.card_update(actor=actor_for(data_scientist), card=card, changes=changes)
    assert card.content == finished.content


def test_import_of_a_foreign_readme_reports_what_did_not_map(registered_model, data_scientist):
    readme = (
        "---\nlicense: mit\nlanguage: en\nwidget: []\nthumbnail: x.png\n---\n"
        "# Some model\n\n## Uses\n\nText classification.\n\n### Direct Use\n\nAs is.\n\n"
        "## Training Details\n\nWeb text.\n\n## How to Get Started\n\npip install x\n"
    )
    changes, report = formats.from_hf_readme(readme)
    assert changes["metadata"] == {"license": "mit", "languages": ["en"]}
    assert changes["sections"]["intended_use"] == "Text classification.\n\n### Direct Use\n\nAs is."
    assert changes["sections"]["training_data"] == "Web text."
    assert report["unmapped_metadata"] == ["widget", "thumbnail"]
    assert report["unmapped_sections"] == ["How to Get Started"]
    with pytest.raises(ValidationFailed):
        formats.from_hf_readme("---\n: [unclosed\n---\n")
    with pytest.raises(ValidationFailed):
        formats.from_hf_readme("x" * (formats.MAX_IMPORT + 1))


def test_markdown_export_reads_well(finished):
    text = formats.to_markdown(finished)
    assert text.startswith("# churn (version 1)")
    assert "## Limitations\n\nSparse history." in text
    assert "| auc | 0.91 |" in text and "**holdout / test**" in text
