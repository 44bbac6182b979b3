"""Structured evaluation results (issue 17, item 7, first part): confusion matrices, curves and
metrics by slice recorded per version through the API, validated by kind, replaced by name,
dataset and split, under the version's content digest (a version without any keeps its
digest), sealed like metrics, audited, and counting their author among the version's
contributors."""

from __future__ import annotations

import re

import pytest

from core.models import AuditEvent
from governance import content
from registry.models import EvaluationResult, ModelVersion
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/scored/versions/1/evaluations/"

MATRIX = {
    "name": "confusion",
    "kind": "confusion_matrix",
    "dataset": "holdout",
    "split": "test",
    "data": {"labels": ["churn", "stay"], "matrix": [[40, 10], [5, 945]]},
}
ROC = {
    "name": "roc",
    "kind": "curve",
    "data": {
        "curve": "roc",
        "points": [{"x": 0, "y": 0, "threshold": 1}, {"x": 0.1, "y": 0.8}, {"x": 1, "y": 1}],
    },
}
SLICES = {
    "name": "auc_by_region",
    "kind": "slices",
    "data": {
        "metric": "auc",
        "slices": [{"slice": "eu", "value": 0.81, "count": 1200}, {"slice": "us", "value": 0.77}],
    },
}


@pytest.fixture
def version(data_scientist) -> ModelVersion:
    return make_version(data_scientist, make_model(data_scientist, "scored"))


def test_each_kind_is_recorded_read_back_and_replaced_by_name(api, data_scientist, version):
    client = api(data_scientist)
    r = client.post(URL, {"evaluations": [MATRIX, ROC, SLICES]}, format="json")
    assert r.status_code == 201, r.content
    body = client.get(URL).json()
    assert [(e["name"], e["kind"], e["dataset"], e["split"]) for e in body] == [
        ("auc_by_region", "slices", "", ""),
        ("confusion", "confusion_matrix", "holdout", "test"),
        ("roc", "curve", "", ""),
    ]
    assert body[1]["data"] == MATRIX["data"]
    assert body[2]["data"]["points"][0] == {"x": 0.0, "y": 0.0, "threshold": 1.0}
    again = {**MATRIX, "data": {"labels": ["churn", "stay"], "matrix": [[41, 9], [5, 945]]}}
    assert client.post(URL, {"evaluations": [again]}, format="json").status_code == 201
    stored = EvaluationResult.objects.get(version=version, name="confusion")
    assert stored.data["matrix"][0] == [41, 9] and EvaluationResult.objects.count() == 3
    event = AuditEvent.objects.filter(action="version.evaluations_logged").latest("sequence")
    assert event.details == {"evaluations": {"confusion[holdout/test]": "confusion_matrix"}}


@pytest.mark.parametrize(
    "bad",
    [
        {"evaluations": "x"},
        {"evaluations": [{**MATRIX, "kind": "heatmap"}]},
        {"evaluations": [{**MATRIX, "extra": 1}]},
        {"evaluations": [{**MATRIX, "data": {"labels": ["a", "b"], "matrix": [[1, 2]]}}]},
        {"evaluations": [{**MATRIX, "data": {"labels": ["a", "a"], "matrix": [[1, 2], [3, 4]]}}]},
        {"evaluations": [{**MATRIX, "data": {"labels": ["a", "b"], "matrix": [[1, -2], [3, 4]]}}]},
        {"evaluations": [{**MATRIX, "data": {"labels": ["a", "b"], "matrix": [[1, 2.5], [3, 4]]}}]},
        {
            "evaluations": [
                {**MATRIX, "data": {"labels": ["a", "b"], "matrix": [[True, 2], [3, 4]]}}
            ]
        },
        {
            "evaluations": [
                {**ROC, "data": {"curve": "roc", "points": [{"x": 0, "y": 2}, {"x": 1, "y": 1}]}}
            ]
        },
        {"evaluations": [{**ROC, "data": {"curve": "roc", "points": [{"x": 0, "y": 0}]}}]},
        {"evaluations": [{**ROC, "data": {"curve": "lift", "points": []}}]},
        {
            "evaluations": [
                {
                    **ROC,
                    "data": {"curve": "other", "points": [{"x": "a", "y": 1}, {"x": 1, "y": 1}]},
                }
            ]
        },
        {
            "evaluations": [
                {
                    **SLICES,
                    "data": {
                        "metric": "auc",
                        "slices": [{"slice": "eu", "value": 1}, {"slice": "eu", "value": 2}],
                    },
                }
            ]
        },
        {
            "evaluations": [
                {
                    **SLICES,
                    "data": {"metric": "auc", "slices": [{"slice": "eu", "value": "0.8"}]},
                }
            ]
        },
        {"evaluations": [{**SLICES, "data": {"metric": "auc"}}]},
        {"evaluations": [MATRIX, MATRIX]},
        {"evaluations": [ROC] * 51},
    ],
)
def test_bad_results_are_refused_and_nothing_is_stored(api, data_scientist, version, bad):
    r = api(data_scientist).post(URL, bad, format="json")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "validation_failed" and body["message"]
    assert not EvaluationResult.objects.exists()
    assert not AuditEvent.objects.filter(action="version.evaluations_logged").exists()


def test_results_are_under_the_digest_and_sealed_like_metrics(api, data_scientist, version):
    before = content.digest(version)
    assert "evaluations" not in content.document(version)  # older versions keep their digest
    client = api(data_scientist)
    assert client.post(URL, {"evaluations": [SLICES]}, format="json").status_code == 201
    assert content.digest(version) != before
    assert content.document(version)["evaluations"][0][:4] == ["auc_by_region", "", "", "slices"]
    ModelVersion.objects.filter(pk=version.pk).update(stage="production")
    r = client.post(URL, {"evaluations": [ROC]}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "version_sealed"
    assert not EvaluationResult.objects.filter(name="roc").exists()


def test_whoever_records_results_supplied_the_versions_content(
    api, data_scientist, ml_engineer, version
):
    from core import permissions
    from core.permissions import Perm
    from tests.factories import superuser

    permissions.grant(
        Perm.CHANGE, version.registered_model, user=ml_engineer, granted_by=superuser()
    )
    assert ml_engineer.pk not in content.contributors(version)
    assert api(ml_engineer).post(URL, {"evaluations": [ROC]}, format="json").status_code == 201
    assert ml_engineer.pk in content.contributors(version)


def test_viewers_read_results_and_cannot_record_them(api, data_scientist, viewer, version):
    api(data_scientist).post(URL, {"evaluations": [ROC]}, format="json")
    assert [e["name"] for e in api(viewer).get(URL).json()] == ["roc"]
    r = api(viewer).post(URL, {"evaluations": [SLICES]}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert EvaluationResult.objects.count() == 1


def test_the_version_page_draws_each_kind(api, client, data_scientist, version):
    api(data_scientist).post(URL, {"evaluations": [MATRIX, ROC, SLICES]}, format="json")
    client.force_login(data_scientist)
    page = client.get("/models/scored/versions/1/").content.decode()
    section = page[page.index('id="evaluations"') :]
    section = section[: section.index("</section>")]
    # The matrix: rows actual, columns predicted, counts as recorded, shaded by row share.
    assert re.search(r'<th scope="row">churn</th><td class="num shade-4"[^>]*>40</td>', section)
    assert re.search(r'<td class="num shade-0"[^>]*>5</td><td class="num shade-5"', section)
    # The curve: its three points in order on a 220-unit plot, and the area under them.
    points = re.search(r'<polyline points="([^"]+)"', section).group(1).split()
    assert points == ["0.0,220.0", "22.0,44.0", "220.0,0.0"]
    assert "area under the points 0.85" in section and "false positive rate" in section
    # The slices: values, counts, and bars on the values' own axis (stated).
    assert "auc by slice; bars on an axis from 0.76 to 0.814" in section
    widths = [float(w) for w in re.findall(r'<rect width="([\d.]+)" height="10"', section)]
    assert widths[0] > 5 * widths[1]
    assert "1200" in section


def test_a_version_without_results_shows_no_section(client, data_scientist, version):
    client.force_login(data_scientist)
    assert 'id="evaluations"' not in client.get("/models/scored/versions/1/").content.decode()


def _compare_section(client, query: str) -> str:
    page = client.get(f"/models/scored/compare/?{query}").content.decode()
    section = page[page.index('id="evaluations"') :]
    return section[: section.index("</section>")]


def test_the_compare_page_sets_each_kind_side_by_side(api, client, data_scientist, version):
    make_version(data_scientist, version.registered_model)
    writer = api(data_scientist)
    writer.post(URL, {"evaluations": [MATRIX, ROC, SLICES]}, format="json")
    later = {
        **SLICES,
        "data": {
            "metric": "auc",
            "slices": [{"slice": "us", "value": 0.79}, {"slice": "apac", "value": 0.7}],
        },
    }
    roc2 = {**ROC, "data": {"curve": "roc", "points": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]}}
    writer.post(URL.replace("/1/", "/2/"), {"evaluations": [later, roc2]}, format="json")
    client.force_login(data_scientist)
    section = _compare_section(client, "versions=1,2")
    # Curves of both versions on one plot, each in its own colour, with its own area.
    assert len(re.findall(r"<polyline", section)) == 2
    assert 'class="curve-line line-0"' in section and 'class="curve-line line-1"' in section
    assert "area under the points 0.85" in section and "area under the points 0.5" in section
    # Slices: one row per slice seen in either version, changes against v1 by auc's
    # direction (higher is better); a slice missing in one version has no change.
    us = section[section.index('<th scope="row">us</th>') :]
    assert re.search(r"<td class=\"num\">0.77</td><td class=\"num\">0.79</td>", us)
    assert re.search(r'class="num better">\+0.02 \(\+2.6', us)
    apac = section[section.index('<th scope="row">apac</th>') :]
    assert apac.split("</tr>")[0].count("—") == 1
    assert "↑ higher is better" in section and "changes against v1" in section
    # The matrix recorded for v1 only: v2 says it has none.
    matrices = section[section.index('class="matrices"') :]
    assert "<h4>v1</h4><table" in matrices and '<h4>v2</h4><p class="muted">Not recorded.' in (
        matrices
    )


def test_a_declared_direction_turns_the_slice_verdicts(api, client, data_scientist, version):
    make_version(data_scientist, version.registered_model)
    writer = api(data_scientist)
    errors = {"name": "error_by_region", "kind": "slices"}
    writer.post(
        URL,
        {
            "evaluations": [
                {**errors, "data": {"metric": "error", "slices": [{"slice": "eu", "value": 0.2}]}}
            ]
        },
        format="json",
    )
    writer.post(
        URL.replace("/1/", "/2/"),
        {
            "evaluations": [
                {**errors, "data": {"metric": "error", "slices": [{"slice": "eu", "value": 0.3}]}}
            ]
        },
        format="json",
    )
    client.force_login(data_scientist)
    assert 'class="num worse">' in _compare_section(
        client, "versions=1,2"
    )  # error: lower is better
    r = writer.patch(
        "/api/v1/models/scored/", {"metric_directions": {"error": "higher"}}, format="json"
    )
    assert r.status_code == 200, r.json()
    assert 'class="num better">' in _compare_section(client, "versions=1,2")


def test_the_compare_page_costs_the_same_queries_for_two_versions_as_for_four(
    api, client, data_scientist, version
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    writer = api(data_scientist)
    for n in range(2, 5):
        make_version(data_scientist, version.registered_model)
        writer.post(
            URL.replace("/1/", f"/{n}/"), {"evaluations": [MATRIX, ROC, SLICES]}, format="json"
        )
    client.force_login(data_scientist)
    counts = []
    for query in ("versions=1,2", "versions=1,2,3,4"):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/models/scored/compare/?{query}").status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
