"""Packaging jobs through the API: every upload is inspected, a malicious pickle is flagged
unsafe without being loaded, jobs are idempotent per input, cancellable, and their progress
and log are readable. Tasks run eagerly here, after the commit that queued them."""

from __future__ import annotations

import io
import os
import pickle

import joblib
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from core.models import AuditEvent
from registry.models import Artifact, PackagingJob
from registry.services.artifacts import artifact_storage
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db
V = "/api/v1/models/churn/versions/1/"


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/modelgate-pwned-by-upload",))


def _model_bytes() -> bytes:
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit(X, y), buffer)
    return buffer.getvalue()


@pytest.fixture
def version(data_scientist):
    return make_version(data_scientist, make_model(data_scientist, "churn"))


def _upload(client, data: bytes, filename: str, capture):
    with capture(execute=True):
        r = client.post(
            f"{V}artifacts/?filename={filename}", data=data, content_type="application/octet-stream"
        )
    assert r.status_code == 201, r.content
    return r.json()


def test_an_upload_is_inspected_and_marked_safe(
    api, data_scientist, version, django_capture_on_commit_callbacks
):
    client = api(data_scientist)
    artifact = _upload(client, _model_bytes(), "model.joblib", django_capture_on_commit_callbacks)
    jobs = client.get(f"{V}jobs/").json()["results"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["kind"] == "inspect" and job["status"] == "succeeded", job
    assert job["progress"] == 100 and job["attempts"] == 1
    assert job["result"]["sha256_verified"] and job["result"]["format"] == "joblib"
    assert job["result"]["scan"]["verdict"] == "safe"
    assert "sklearn.linear_model._logistic.LogisticRegression" in job["result"]["scan"]["imports"]
    assert "sha256 and size verified" in job["log"] and "verdict: safe" in job["log"]
    assert Artifact.objects.get(pk=artifact["id"]).safety == "safe"
    assert AuditEvent.objects.filter(action="job.succeeded").count() == 1


def test_a_malicious_pickle_is_flagged_unsafe_and_never_loaded(
    api, data_scientist, version, django_capture_on_commit_callbacks
):
    marker = "/tmp/modelgate-pwned-by-upload"
    if os.path.exists(marker):
        os.remove(marker)
    client = api(data_scientist)
    artifact = _upload(
        client, pickle.dumps(Evil()), "model.pkl", django_capture_on_commit_callbacks
    )
    job = client.get(f"{V}jobs/").json()["results"][0]
    assert job["result"]["scan"]["verdict"] == "unsafe"
    assert job["result"]["scan"]["dangerous"] in (["posix.system"], ["nt.system"])
    assert Artifact.objects.get(pk=artifact["id"]).safety == "unsafe"
    assert not os.path.exists(marker)


def test_jobs_are_idempotent_per_input_unless_forced(
    api, data_scientist, version, django_capture_on_commit_callbacks
):
    client = api(data_scientist)
    _upload(client, _model_bytes(), "model.joblib", django_capture_on_commit_callbacks)
    first = client.get(f"{V}jobs/").json()["results"][0]
    r = client.post(f"{V}jobs/", {"kind": "inspect"}, format="json")
    assert r.status_code == 200 and r.json()["id"] == first["id"]  # the earlier result
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "inspect", "force": True}, format="json")
    assert r.status_code == 201 and r.json()["id"] != first["id"]
    assert PackagingJob.objects.filter(status="succeeded").count() == 2


def test_a_tampered_file_fails_inspection_with_a_clear_message(
    api, data_scientist, version, django_capture_on_commit_callbacks
):
    client = api(data_scientist)
    artifact = _upload(client, _model_bytes(), "model.joblib", django_capture_on_commit_callbacks)
    key = Artifact.objects.get(pk=artifact["id"]).storage_key
    path = artifact_storage().path(key)
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V}jobs/", {"kind": "inspect", "force": True}, format="json")
    job = client.get(f"{V}jobs/{r.json()['id']}/").json()
    assert job["status"] == "failed" and "does not match its record" in job["error"]


def test_cancel_and_errors(api, data_scientist, viewer, version):
    client = api(data_scientist)
    r = client.post(f"{V}jobs/", {"kind": "inspect"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "no_input_artifact"
    client.post(
        f"{V}artifacts/?filename=m.pkl",
        data=pickle.dumps({"a": 1}),
        content_type="application/octet-stream",
    )  # queued; the task waits for commit
    job = client.get(f"{V}jobs/").json()["results"][0]
    assert job["status"] == "queued"
    assert api(viewer).post(f"{V}jobs/{job['id']}/cancel/").status_code == 403
    r = client.post(f"{V}jobs/{job['id']}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = client.post(f"{V}jobs/{job['id']}/cancel/")
    assert r.status_code == 409 and r.json()["code"] == "job_not_active"
    from registry.tasks import run_job

    assert run_job.apply(args=[job["id"]]).get() == "nothing to do"  # a late message is inert
    for body, code in (
        ({"kind": "teleport"}, "validation_failed"),
        ({"kind": "inspect", "artifact": 999}, "artifact_not_found"),
    ):
        r = client.post(f"{V}jobs/", body, format="json")
        assert r.json()["code"] == code, r.json()
    assert client.get(f"{V}jobs/999/").status_code == 404


def test_version_page_shows_jobs_and_the_verdict(
    client, data_scientist, version, django_capture_on_commit_callbacks
):
    from tests.factories import make_artifact

    with django_capture_on_commit_callbacks(execute=True):
        make_artifact(data_scientist, version, pickle.dumps(Evil()), "evil.pkl")
    client.force_login(data_scientist)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert "Inspect #" in page and "succeeded" in page
    assert '<span class="badge safety-unsafe">unsafe</span>' in page
    assert "js/jobs.js" in page and 'data-jobs-url="/api/v1/models/churn/versions/1/jobs/"' in page
