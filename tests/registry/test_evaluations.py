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


def test_curves_and_slices_at_the_float_limits_draw_without_failing(
    api, client, data_scientist, version
):
    """An 'other' curve whose x values are all 1e17 (x + 1 == x there) divided by zero; values
    near ±1.8e308 overflowed to infinity and drew 'nan'. Both draw now, on every page."""
    make_version(data_scientist, version.registered_model)
    same_x = {
        "name": "flat",
        "kind": "curve",
        "data": {"curve": "other", "points": [{"x": 1e17, "y": 0}, {"x": 1e17, "y": 1}]},
    }
    extreme = {
        "name": "wide",
        "kind": "curve",
        "data": {
            "curve": "other",
            "points": [{"x": -1.7e308, "y": -1.7e308}, {"x": 1.7e308, "y": 1.7e308}],
        },
    }
    slices = {
        "name": "huge_by_region",
        "kind": "slices",
        "data": {
            "metric": "loss",
            "slices": [{"slice": "a", "value": -1.7e308}, {"slice": "b", "value": 1.7e308}],
        },
    }
    for n in (1, 2):
        r = api(data_scientist).post(
            URL.replace("/1/", f"/{n}/"), {"evaluations": [same_x, extreme, slices]}, format="json"
        )
        assert r.status_code == 201, r.json()
    client.force_login(data_scientist)
    for path in ("versions/1/", "versions/1/card/", "compare/?versions=1,2"):
        r = client.get(f"/models/scored/{path}")
        assert r.status_code == 200, path
        page = r.content.decode()
        assert "nan" not in page.lower().replace("nanoseconds", ""), path
        assert "<polyline" in page
    page = client.get("/models/scored/versions/1/").content.decode()
    assert 'points="110.0,220.0 110.0,0.0"' in page  # equal x: drawn midway


def test_slices_of_different_metrics_under_one_name_are_not_judged_together(
    api, client, data_scientist, version
):
    make_version(data_scientist, version.registered_model)
    auc = {
        "name": "by_region",
        "kind": "slices",
        "data": {"metric": "auc", "slices": [{"slice": "eu", "value": 0.8}]},
    }
    loss = {
        "name": "by_region",
        "kind": "slices",
        "data": {"metric": "log_loss", "slices": [{"slice": "eu", "value": 0.9}]},
    }
    api(data_scientist).post(URL, {"evaluations": [auc]}, format="json")
    api(data_scientist).post(URL.replace("/1/", "/2/"), {"evaluations": [loss]}, format="json")
    client.force_login(data_scientist)
    section = _compare_section(client, "versions=1,2")
    assert "auc by slice" in section and "log_loss by slice" in section
    assert 'class="num better"' not in section and 'class="num worse"' not in section


def test_a_version_s_evaluations_stay_within_their_budget(api, data_scientist, version):
    from registry import validation

    big = [
        {
            "name": f"m{i}",
            "kind": "confusion_matrix",
            "data": {"labels": [f"l{j}" for j in range(100)], "matrix": [[1] * 100] * 100},
        }
        for i in range(4)
    ]
    writer = api(data_scientist)
    assert writer.post(URL, {"evaluations": big}, format="json").status_code == 201
    # Replacing one counts it once; a fifth passes 40,000 cells and stores nothing.
    assert writer.post(URL, {"evaluations": big[:1]}, format="json").status_code == 201
    fifth = {**big[0], "name": "m4"}
    r = writer.post(URL, {"evaluations": [fifth, MATRIX]}, format="json")
    assert r.status_code == 400 and "40,000 matrix cells" in r.json()["message"], r.json()
    assert EvaluationResult.objects.filter(version=version).count() == 4
    many = [
        {
            **SLICES,
            "name": f"s{i}",
            "data": {**SLICES["data"], "slices": [{"slice": "x", "value": 1.0}]},
        }
        for i in range(50)
    ]
    assert writer.post(URL, {"evaluations": many}, format="json").status_code == 201
    more = [{**m, "name": f"t{i}"} for i, m in enumerate(many)]
    assert writer.post(URL, {"evaluations": more[:46]}, format="json").status_code == 201
    r = writer.post(URL, {"evaluations": more[46:]}, format="json")
    assert (
        r.status_code == 400 and f"at most {validation.VERSION_EVALUATIONS}" in r.json()["message"]
    )


def test_large_matrices_are_named_on_the_card_and_compare_pages(
    api, client, data_scientist, version
):
    make_version(data_scientist, version.registered_model)
    large = {
        "name": "wide",
        "kind": "confusion_matrix",
        "data": {"labels": [f"l{j}" for j in range(30)], "matrix": [[1] * 30] * 30},
    }
    for n in (1, 2):
        api(data_scientist).post(
            URL.replace("/1/", f"/{n}/"), {"evaluations": [large]}, format="json"
        )
    client.force_login(data_scientist)
    card = client.get("/models/scored/versions/1/card/").content.decode()
    assert "A 30×30 matrix, too large to draw here" in card
    assert 'href="/models/scored/versions/1/#evaluations"' in card
    section = _compare_section(client, "versions=1,2")
    assert section.count("too large to draw here") == 2
    assert 'href="/models/scored/versions/2/#evaluations"' in section
    page = client.get("/models/scored/versions/1/").content.decode()
    assert page.count('<td class="num shade-') == 900  # the version page draws it all
