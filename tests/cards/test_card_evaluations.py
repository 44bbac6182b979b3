"""The card's evaluation section (issue 17, item 7): a version's confusion matrices, curves
and metrics by slice appear in the card's JSON (under the published schema), its Markdown and
its page; metrics by slice go into the Hugging Face model-index, which the Hub's own library
reads back; confusion matrices and curves, which the model-index has no place for, do not.
An exported README imported again does not turn the generated section into card text."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from huggingface_hub import ModelCard as HubCard

from cards import formats
from cards.models import ModelCard
from registry import services
from tests.factories import actor_for, make_model, make_version

pytestmark = pytest.mark.django_db
SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2] / "cards" / "schema" / "model-card-v1.schema.json"
    ).read_text()
)
MATRIX = {
    "name": "confusion",
    "kind": "confusion_matrix",
    "dataset": "holdout",
    "split": "test",
    "data": {"labels": ["churn", "a|b"], "matrix": [[40, 10], [5, 945]]},
}
ROC = {
    "name": "roc",
    "kind": "curve",
    "dataset": "holdout",
    "split": "test",
    "data": {"curve": "roc", "points": [{"x": 0, "y": 0}, {"x": 0.1, "y": 0.8}, {"x": 1, "y": 1}]},
}
SLICES = {
    "name": "auc_by_region",
    "kind": "slices",
    "dataset": "holdout",
    "split": "test",
    "data": {
        "metric": "auc",
        "slices": [{"slice": "eu", "value": 0.81, "count": 1200}, {"slice": "us", "value": 0.77}],
    },
}
OTHER_SPLIT = {
    **SLICES,
    "name": "recall_by_age",
    "split": "validation",
    "data": {
        "metric": "recall",
        "slices": [{"slice": "under 30", "value": 0.6}],
    },
}


@pytest.fixture
def card(data_scientist) -> ModelCard:
    version = make_version(
        data_scientist,
        make_model(data_scientist, "churn"),
        metrics=[{"name": "auc", "value": 0.91, "dataset": "holdout", "split": "test"}],
    )
    services.version_evaluations_log(
        actor=actor_for(data_scientist),
        version=version,
        evaluations=[MATRIX, ROC, SLICES, OTHER_SPLIT],
    )
    return ModelCard.objects.get(version=version)


def test_the_json_export_carries_the_evaluations_under_the_schema(card):
    doc = formats.to_json(card)
    jsonschema.validate(doc, SCHEMA)
    found = {e["name"]: e for e in doc["quantitative_analysis"]["evaluations"]}
    assert set(found) == {"confusion", "roc", "auc_by_region", "recall_by_age"}
    assert found["confusion"]["data"]["matrix"] == [[40, 10], [5, 945]]
    assert (found["roc"]["kind"], found["roc"]["dataset"], found["roc"]["split"]) == (
        "curve",
        "holdout",
        "test",
    )


def test_a_version_without_evaluations_exports_an_empty_list_and_no_section(data_scientist):
    version = make_version(data_scientist, make_model(data_scientist, "plain"))
    card = ModelCard.objects.get(version=version)
    assert formats.to_json(card)["quantitative_analysis"]["evaluations"] == []
    assert "# Evaluations" not in formats.to_markdown(card)


def test_the_markdown_has_an_evaluation_section(card):
    text = formats.to_markdown(card)
    section = text[text.index("## Evaluations") :]
    assert "**confusion** (holdout / test): confusion matrix, rows actual, columns predicted" in (
        section
    )
    # A label with a pipe does not break the table.
    assert "| actual \\ predicted | churn | a\\|b |" in section
    assert "| churn | 40 | 10 |" in section and "| a\\|b | 5 | 945 |" in section
    assert "**roc** (holdout / test): ROC curve, 3 points; area under the points 0.85" in section
    assert "| eu | 0.81 | 1200 |" in section and "| us | 0.77 |  |" in section


def test_the_hub_reads_slices_from_the_model_index_and_nothing_else(card):
    readme = formats.to_hf_readme(card)
    results = HubCard(readme).data.eval_results  # raises on an invalid model-index
    found = {(r.dataset_split, r.metric_name, r.metric_type, r.metric_value) for r in results}
    assert found == {
        ("test", "auc", "auc", 0.91),
        ("test", "auc (eu)", "auc", 0.81),
        ("test", "auc (us)", "auc", 0.77),
        ("validation", "recall (under 30)", "recall", 0.6),
    }
    assert {r.metric_args.get("slice") for r in results if r.metric_args} == {
        "eu",
        "us",
        "under 30",
    }
    # The slices share the metrics' result for the same dataset and split.
    front = readme.split("---")[1]
    assert front.count("split: test") == 1


def test_an_exported_readme_imported_again_skips_the_generated_sections(card):
    changes, report = formats.from_hf_readme(formats.to_hf_readme(card))
    assert report["skipped_generated"] == ["Metrics", "Evaluations"]
    assert report["unmapped_sections"] == []
    assert not any("confusion" in text for text in changes["sections"].values())


def test_the_card_page_draws_the_evaluations(client, data_scientist, card):
    client.force_login(data_scientist)
    page = client.get("/models/churn/versions/1/card/").content.decode()
    section = page[page.index('id="evaluations"') :]
    assert '<table class="confusion">' in section and "<polyline" in section
    assert "auc by slice" in section and "<h4>recall_by_age" in section


def test_a_readme_with_thousands_of_slice_results_imports_back(data_scientist):
    """A card's own export may hold a model-index of thousands of per-slice results; import
    skips the model-index as text before parsing, so the README comes back in."""
    version = make_version(data_scientist, make_model(data_scientist, "sliced"))
    slices = [{"slice": f"segment {'s' * 100} {i}", "value": i / 2000} for i in range(500)]
    services.version_evaluations_log(
        actor=actor_for(data_scientist),
        version=version,
        evaluations=[
            {
                "name": f"by_segment_{k}",
                "kind": "slices",
                "data": {"metric": "auc", "slices": slices},
            }
            for k in range(4)
        ],
    )
    card = ModelCard.objects.get(version=version)
    readme = formats.to_hf_readme(card)
    front = readme.split("---\n")[1]
    assert len(front) > formats.MAX_FRONT_MATTER  # the results alone pass its limit
    changes, report = formats.from_hf_readme(readme)
    assert report["unmapped_metadata"] == [] and report["unmapped_sections"] == []
    assert changes["sections"]["intended_use"] == card.content["sections"].get("intended_use", "")


@pytest.mark.parametrize(
    "front",
    [
        "license: mit\nmodel-index:\n- name: x\n  results: []\ntags: [a]\n",
        "model-index: [{name: x, results: []}]\nlicense: mit\ntags:\n- a\n",
        "license: mit\nmodel-index:\n  - name: x\n\n    results: []\n# note\ntags:\n  - a\n",
    ],
)
def test_the_model_index_is_cut_out_and_the_rest_of_the_front_matter_kept(front):
    changes, report = formats.from_hf_readme(f"---\n{front}---\n# m\n\n## Limitations\n\nNone.\n")
    assert changes["metadata"] == {"license": "mit", "tags": ["a"]}
    assert report["unmapped_metadata"] == []


def test_a_readme_past_the_outer_limit_is_refused():
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="larger than 2 MB"):
        formats.from_hf_readme("---\nmodel-index:\n" + "  - x\n" * 400_000 + "---\n")
    with pytest.raises(ValidationFailed, match="front matter is larger than 256 KB"):
        formats.from_hf_readme("---\ntags:\n" + "  - x\n" * 60_000 + "---\n")
