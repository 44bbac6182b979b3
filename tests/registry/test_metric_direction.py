"""Which way a metric is better (issue 17, item 2): defaults from whole words of the name, a
model's own declarations (validated, audited, frozen for non-administrators while a version
is under review or serving), and comparisons that call a change better or worse by it, with
differences as the numbers are written and numbers shown to significant digits."""

from __future__ import annotations

import re

import pytest

from core.models import AuditEvent
from core.numbers import significant
from registry import metric_direction
from registry.models import ModelVersion, RegisteredModel
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("val_loss", "lower"),
        ("p95_latency_ms", "lower"),
        ("Error-Rate", "lower"),
        ("rmse", "lower"),
        ("roc_auc", "higher"),
        ("accuracy", "higher"),
        ("f1", "higher"),
        ("lossless_ratio", None),  # a word that contains "loss" is not "loss"
        ("glossary", None),
        ("auc_error", None),  # words of both kinds decide nothing
        ("score", None),
        ("", None),
    ],
)
def test_defaults_come_from_whole_words_of_the_name(name, expected):
    assert metric_direction.default_direction(name) == expected


def test_differences_are_exact_for_the_numbers_as_written():
    assert metric_direction.difference(0.7651, 0.75) == 0.0151
    assert metric_direction.difference(0.1, 0.3) == -0.2
    assert metric_direction.percent(119.0, 100.0) == 19.0
    assert metric_direction.percent(0.78, 0.74) == 5.41
    assert metric_direction.percent(1.0, 0.0) is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.7651, "0.7651"),
        (0.78, "0.78"),
        (12345.678, "12346"),
        (0.0000007653236389, "7.653e-07"),
        (0.015100000000000002, "0.0151"),
        (1e20, "1e+20"),
        (-0.04, "-0.04"),
        (0.0, "0"),
        (3.0, "3"),
        (float("nan"), "nan"),
    ],
)
def test_pages_show_numbers_to_significant_digits(value, shown):
    assert significant(value) == shown


def _compare(client, name="scorer", versions="1,2"):
    r = client.get(f"{URL}{name}/compare/", {"versions": versions})
    assert r.status_code == 200, r.content
    return {m["name"]: m for m in r.json()["metrics"]}


def test_a_comparison_calls_each_change_better_or_worse_by_its_direction(api, data_scientist):
    registered_model = make_model(data_scientist, "scorer")
    make_version(
        data_scientist,
        registered_model,
        metrics={"auc": 0.74, "p95_latency_ms": 100.0, "drift": 0.2, "gap": 0.5, "same": 1.0},
    )
    make_version(
        data_scientist,
        registered_model,
        metrics={"auc": 0.78, "p95_latency_ms": 119.0, "drift": 0.1, "gap": 0.7, "same": 1.0},
    )
    client = api(data_scientist)
    r = client.patch(
        f"{URL}scorer/", {"metric_directions": {"gap": "lower", "auc": "lower"}}, format="json"
    )
    assert r.status_code == 200, r.content
    assert r.json()["metric_directions"] == {"auc": "lower", "gap": "lower"}
    metrics = _compare(client)
    # A declaration overrides the default (auc declared lower here, for the test's sake).
    assert (metrics["auc"]["direction"], metrics["auc"]["direction_source"]) == (
        "lower",
        "declared",
    )
    assert metrics["auc"]["changes"] == [{"absolute": 0.04, "percent": 5.41, "verdict": "worse"}]
    latency = metrics["p95_latency_ms"]
    assert (latency["direction"], latency["direction_source"]) == ("lower", "default")
    assert latency["changes"] == [{"absolute": 19.0, "percent": 19.0, "verdict": "worse"}]
    assert metrics["gap"]["changes"][0]["verdict"] == "worse"
    # No word decides "drift": a change, neither better nor worse.
    assert (metrics["drift"]["direction"], metrics["drift"]["direction_source"]) == (None, "")
    assert metrics["drift"]["changes"] == [{"absolute": -0.1, "percent": -50.0, "verdict": None}]
    assert metrics["same"]["changes"][0]["verdict"] == "same"

    client.patch(f"{URL}scorer/", {"metric_directions": {}}, format="json")
    assert _compare(client)["auc"]["changes"][0]["verdict"] == "better"  # the default again
    changes = [
        e.details["changes"]["metric_directions"]
        for e in AuditEvent.objects.filter(action="registered_model.updated").order_by("sequence")
    ]
    assert changes == [
        {"from": {}, "to": {"auc": "lower", "gap": "lower"}},
        {"from": {"auc": "lower", "gap": "lower"}, "to": {}},
    ]


@pytest.mark.parametrize(
    "bad",
    [
        ["auc"],
        {"auc": "up"},
        {"auc": None},
        {"": "higher"},
        {"x" * 300: "higher"},
        {f"m{i}": "higher" for i in range(201)},
    ],
)
def test_bad_declarations_are_refused_and_change_nothing(api, data_scientist, bad):
    make_model(data_scientist, "scorer")
    r = api(data_scientist).patch(f"{URL}scorer/", {"metric_directions": bad}, format="json")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "validation_failed" and body["message"]
    assert RegisteredModel.objects.get(name="scorer").metric_directions == {}


def test_only_an_administrator_changes_directions_while_a_version_is_under_review_or_serving(
    api, data_scientist, admin_user, viewer
):
    registered_model = make_model(data_scientist, "serving")
    version = make_version(data_scientist, registered_model, metrics={"latency": 10.0})
    body = {"metric_directions": {"latency": "higher"}}
    r = api(viewer).patch(f"{URL}serving/", body, format="json")
    assert r.status_code in (403, 404)  # no change right
    ModelVersion.objects.filter(pk=version.pk).update(stage="production")
    r = api(data_scientist).patch(f"{URL}serving/", body, format="json")
    assert r.status_code == 403 and r.json()["code"] == "administrator_required", r.content
    assert AuditEvent.objects.filter(
        action="gate.refused", registered_model_id=registered_model.pk
    ).exists()
    # Sending the same declarations again is no change, and is not refused.
    r = api(data_scientist).patch(f"{URL}serving/", {"metric_directions": {}}, format="json")
    assert r.status_code == 200
    assert RegisteredModel.objects.get(pk=registered_model.pk).metric_directions == {}
    r = api(admin_user).patch(f"{URL}serving/", body, format="json")
    assert r.status_code == 200 and r.json()["metric_directions"] == {"latency": "higher"}


def test_the_compare_page_colours_by_direction_and_states_each_axis(client, data_scientist):
    registered_model = make_model(data_scientist, "paged")
    make_version(data_scientist, registered_model, metrics={"auc": 0.74, "latency_ms": 100.0})
    make_version(data_scientist, registered_model, metrics={"auc": 0.78, "latency_ms": 119.0})
    client.force_login(data_scientist)
    html = client.get("/models/paged/compare/", {"v": ["1", "2"]}).content.decode()
    cells = dict(re.findall(r'<td class="num (better|worse)"[^>]*>([^<]*)', html)[::-1])
    assert cells == {"better": "+0.04 (+5.41%) ", "worse": "+19 (+19%) "}
    assert "↑ higher is better" in html and "↓ lower is better" in html
    # Each metric on its own axis, stated, so 0.74 against 0.78 is visible.
    assert "axis 0.73 to 0.784" in html and "axis 95.25 to 120.9" in html
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', html)]
    assert widths[1] > 4 * widths[0]  # auc: the bars differ visibly
    assert "Bars start at each metric's axis minimum" in html


def test_a_declaration_against_the_names_usual_direction_is_flagged(api, client, data_scientist):
    registered_model = make_model(data_scientist, "flagged")
    make_version(data_scientist, registered_model, metrics={"val_loss": 0.3})
    make_version(data_scientist, registered_model, metrics={"val_loss": 0.5})
    r = api(data_scientist).patch(
        f"{URL}flagged/", {"metric_directions": {"val_loss": "higher"}}, format="json"
    )
    assert r.status_code == 200
    loss = _compare(api(data_scientist), name="flagged")["val_loss"]
    assert (loss["direction"], loss["direction_source"], loss["usual_direction"]) == (
        "higher",
        "declared",
        "lower",
    )
    assert loss["changes"][0]["verdict"] == "better"  # as declared, but the page says so
    client.force_login(data_scientist)
    html = client.get("/models/flagged/compare/", {"v": ["1", "2"]}).content.decode()
    assert ">declared</span>" in html and "usually lower is better" in html
