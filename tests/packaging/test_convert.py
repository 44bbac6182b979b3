"""Conversion to ONNX: scikit-learn models convert in a limited child process with a parity
report and a derived artifact; unsafe, foreign, corrupt or unconvertible inputs fail with a
clear message and leave nothing behind."""

from __future__ import annotations

import io
import os
import pickle

import joblib
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.models import Artifact, PackagingJob
from tests.factories import actor_for, make_model, make_version

pytestmark = pytest.mark.django_db
V = "/api/v1/models/churn/versions/1/"
X, Y = make_classification(n_samples=200, n_features=4, random_state=0)
COLUMNS = ["a", "b", "c", "d"]
SIGNATURE = {
    "inputs": [{"name": c, "type": "double"} for c in COLUMNS],
    "outputs": [{"name": "label", "type": "long"}],
}


def _joblib(obj) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/modelgate-pwned-by-convert",))


def _setup(api, user, data: bytes, filename: str, capture, **version_fields):
    make_version(user, make_model(user, "churn"), **version_fields)
    client = api(user)
    with capture(execute=True):
        client.post(
            f"{V}artifacts/?filename={filename}", data=data, content_type="application/octet-stream"
        )
    with capture(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "convert_onnx"}, format="json")
    assert r.status_code == 201, r.json()
    return client, client.get(f"{V}jobs/{r.json()['id']}/").json()


def test_a_forest_converts_with_parity_and_a_derived_onnx_artifact(
    api, data_scientist, django_capture_on_commit_callbacks
):
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, Y)
    example = [dict(zip(COLUMNS, row, strict=True)) for row in X[:25].tolist()]
    client, job = _setup(
        api,
        data_scientist,
        _joblib(forest),
        "forest.joblib",
        django_capture_on_commit_callbacks,
        signature=SIGNATURE,
        input_example=example,
    )
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["estimator"] == "RandomForestClassifier" and result["rows"] == 25
    assert result["label_agreement"] == 1.0 and result["max_abs_diff"] < 1e-5
    onnx = Artifact.objects.get(pk=result["onnx_artifact"]["id"])
    assert onnx.format == "onnx" and onnx.filename == "forest.onnx"
    assert onnx.derived_from.filename == "forest.joblib" and onnx.safety == "safe"
    again = client.post(f"{V}jobs/", {"kind": "convert_onnx"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == job["id"]


def test_a_pipeline_converts_on_rows_generated_from_its_signature(
    api, data_scientist, django_capture_on_commit_callbacks
):
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    _, job = _setup(
        api,
        data_scientist,
        pickle.dumps(pipeline),
        "pipe.pkl",
        django_capture_on_commit_callbacks,
        signature=SIGNATURE,
    )
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == 64 and job["result"]["estimator"] == "Pipeline"


@pytest.mark.parametrize(
    "payload,filename,fields,message",
    [
        (pickle.dumps(Evil()), "evil.pkl", {"signature": SIGNATURE}, "The file is unsafe"),
        (
            pickle.dumps({"not": "a model"}),
            "dict.pkl",
            {"signature": SIGNATURE},
            "not a scikit-learn model",
        ),
        (
            _joblib(RandomForestClassifier(n_estimators=2).fit(X, Y))[:300],
            "broken.joblib",
            {"signature": SIGNATURE},
            "The file is suspicious",
        ),
        (
            pickle.dumps(LogisticRegression().fit(X, Y)),
            "lr.pkl",
            {},
            "needs an input example or a signature",
        ),
    ],
)
def test_bad_inputs_fail_with_a_clear_message_and_leave_nothing(
    api, data_scientist, django_capture_on_commit_callbacks, payload, filename, fields, message
):
    marker = "/tmp/modelgate-pwned-by-convert"
    if os.path.exists(marker):
        os.remove(marker)
    _, job = _setup(
        api, data_scientist, payload, filename, django_capture_on_commit_callbacks, **fields
    )
    assert job["status"] == "failed" and message in job["error"], job
    assert not Artifact.objects.filter(format="onnx").exists()
    assert not os.path.exists(marker)


def test_an_unsupported_estimator_fails_with_the_converters_reason(
    api, data_scientist, django_capture_on_commit_callbacks
):
    from sklearn.semi_supervised import LabelSpreading

    model = LabelSpreading().fit(X, Y)
    _, job = _setup(
        api,
        data_scientist,
        pickle.dumps(model),
        "ls.pkl",
        django_capture_on_commit_callbacks,
        signature=SIGNATURE,
    )
    assert job["status"] == "failed" and "skl2onnx cannot convert LabelSpreading" in job["error"], (
        job
    )


def test_failed_packaging_jobs_block_readiness(
    api, data_scientist, ml_engineer, django_capture_on_commit_callbacks
):
    from governance import promotions
    from registry.models import ModelVersion

    _setup(
        api,
        data_scientist,
        pickle.dumps({"x": 1}),
        "dict.pkl",
        django_capture_on_commit_callbacks,
        signature=SIGNATURE,
    )
    assert PackagingJob.objects.filter(status="failed").exists()
    request = promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=ModelVersion.objects.get(), target_stage="staging"
    )
    check = next(c for c in promotions.evaluate(request).checks if c.name == "packaging")
    assert not check.passed and "convert_onnx" in check.message


def test_an_administrator_may_trust_a_file_the_scan_did_not_clear(
    api, client, data_scientist, admin_user, django_capture_on_commit_callbacks
):
    from fractions import Fraction

    _, job = _setup(
        api,
        data_scientist,
        pickle.dumps(Fraction(1, 3)),
        "odd.pkl",
        django_capture_on_commit_callbacks,
        signature=SIGNATURE,
    )
    assert "The file is unsafe" in job["error"]  # an import off the exact allow-list
    artifact = Artifact.objects.get(filename="odd.pkl")
    client.force_login(data_scientist)  # not an administrator: the action is refused
    client.post("/admin/registry/artifact/", {"action": "trust", "_selected_action": [artifact.pk]})
    artifact.refresh_from_db()
    assert artifact.trusted_at is None
    client.force_login(admin_user)
    client.post("/admin/registry/artifact/", {"action": "trust", "_selected_action": [artifact.pk]})
    artifact.refresh_from_db()
    assert artifact.trusted_at is not None and artifact.trusted_by == admin_user
    from core.models import AuditEvent

    assert AuditEvent.objects.filter(action="artifact.trusted").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        r = api(data_scientist).post(
            f"{V}jobs/", {"kind": "convert_onnx", "force": True}, format="json"
        )
    job = api(data_scientist).get(f"{V}jobs/{r.json()['id']}/").json()
    assert "not a scikit-learn model" in job["error"]  # loaded (trusted), then refused


def test_signature_inference_fills_a_missing_signature(
    api, data_scientist, django_capture_on_commit_callbacks
):
    from registry.models import ModelVersion

    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    example = [{"a": 1.5, "b": 2, "c": 0.1, "d": -1.0}, {"a": 0.5, "b": 3, "c": 0.2, "d": 1.0}]
    make_version(data_scientist, make_model(data_scientist, "churn"), input_example=example)
    client = api(data_scientist)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"{V}artifacts/?filename=f.joblib",
            data=_joblib(forest),
            content_type="application/octet-stream",
        )
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "infer_signature"}, format="json")
    job = client.get(f"{V}jobs/{r.json()['id']}/").json()
    assert job["status"] == "succeeded", job
    signature = ModelVersion.objects.get().signature
    assert [(c["name"], c["type"]) for c in signature["inputs"]] == [
        ("a", "double"),
        ("b", "long"),
        ("c", "double"),
        ("d", "double"),
    ]
    assert [(c["name"], c["type"]) for c in signature["outputs"]] == [("prediction", "long")]
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "infer_signature", "force": True}, format="json")
    assert client.get(f"{V}jobs/{r.json()['id']}/").json()["result"]["changed"] is False


def test_signature_inference_without_an_example_fails_clearly(
    api, data_scientist, django_capture_on_commit_callbacks
):
    make_version(data_scientist, make_model(data_scientist, "churn"))
    client = api(data_scientist)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"{V}artifacts/?filename=m.pkl",
            data=pickle.dumps({"a": 1}),
            content_type="application/octet-stream",
        )
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "infer_signature"}, format="json")
    job = client.get(f"{V}jobs/{r.json()['id']}/").json()
    assert job["status"] == "failed" and "needs an input example" in job["error"]


class Hungry:
    """Allowed imports only, but loading it asks for 1 GiB."""

    def __reduce__(self):
        import numpy

        return (numpy.ones, ((2**27,),))


def test_the_memory_limit_stops_a_model_that_asks_for_too_much(
    api, data_scientist, settings, django_capture_on_commit_callbacks
):
    settings.CONVERSION_MEMORY_LIMIT = 1280 * 1024**2
    _, job = _setup(
        api,
        data_scientist,
        pickle.dumps(Hungry()),
        "hungry.pkl",
        django_capture_on_commit_callbacks,
        signature=SIGNATURE,
    )
    assert (
        job["status"] == "failed" and "needs more memory than the conversion limit" in job["error"]
    ), job
    settings.CONVERSION_MEMORY_LIMIT = 6 * 1024**3  # the same file within a larger limit
    with django_capture_on_commit_callbacks(execute=True):
        r = api(data_scientist).post(
            f"{V}jobs/", {"kind": "convert_onnx", "force": True}, format="json"
        )
    job = api(data_scientist).get(f"{V}jobs/{r.json()['id']}/").json()
    assert "not a scikit-learn model" in job["error"], job
