"""Loading governed models with the unmodified MLflow client (mlflow 3.17.2) from a live
Modelgate: get-download-uri answers a URI of MLflow's mlflow-artifacts protocol serving the
version's MLflow bundle (built on demand by the bundle job), `mlflow.pyfunc.load_model` loads it
and predicts; while it is built the client gets a clear refusal it does not retry; sources that
point elsewhere come back unchanged; models:/ sources are followed one hop."""

from __future__ import annotations

import gc
import hashlib
import http.client
import io
import json
import pickle
import posixpath
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
from django.contrib.auth.models import User
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.request_utils import _cached_get_request_session
from sklearn.linear_model import LogisticRegression

from core import permissions
from core.actors import Actor
from core.models import AuditEvent
from core.permissions import Perm
from core.tokens import token_create
from registry import services
from registry.models import Artifact, ModelVersion, PackagingJob
from tests.factories import (
    UserFactory,
    actor_for,
    approve_card,
    make_artifact,
    make_model,
    make_version,
    place,
    superuser,
)
from tests.packaging.conftest import COLUMNS, EXAMPLE, SIGNATURE, X, Y

pytestmark = pytest.mark.django_db(transaction=True)

FRAME = pd.DataFrame(X, columns=COLUMNS)
ESTIMATOR = LogisticRegression().fit(FRAME, Y)
RUN_JOB = "registry.tasks.run_job"


def _token(user: User) -> str:
    return token_create(actor=Actor.system("cli", user=user), user=user, name="mlflow")[1]


@pytest.fixture
def mlflow_as(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    """The MLflow library pointed at the live server (both URIs, as users set them), signed in
    as `user` with an API token; it never retries, so a refusal is seen as it is."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # a sklearn pickle
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(live_server.url)
    mlflow.set_registry_uri(live_server.url)

    def sign_in(user: User) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", _token(user))
        return MlflowClient()

    try:
        yield sign_in
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        # The client keeps its HTTP connections alive in cached sessions; drop them, so the
        # server's threads end those connections and close their database connections.
        _cached_get_request_session.cache_clear()
        gc.collect()


def _get(live_server: Any, target: str, token: str) -> tuple[int, dict[str, str], bytes]:
    """A raw GET, the path sent exactly as given (no client normalises it)."""
    url = urllib.parse.urlsplit(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _governed(owner: User, name: str = "churn", versions: int = 3) -> ModelVersion:
    """A model whose last version holds an inspected scikit-learn pickle, with a signature
    and an input example (what the bundle job checks predictions on)."""
    registered_model = make_model(owner, name)
    for _ in range(versions - 1):
        make_version(owner, registered_model, source="s3://bucket/older")
    version = make_version(owner, registered_model, signature=SIGNATURE, input_example=EXAMPLE)
    make_artifact(owner, version, data=pickle.dumps(ESTIMATOR), filename="model.pkl")
    return version


def _bundle_jobs(version: ModelVersion) -> list[PackagingJob]:
    return list(PackagingJob.objects.filter(version=version, kind="bundle").order_by("pk"))


def _refusal(call: Callable[[], Any]) -> MlflowException:
    with pytest.raises(MlflowException) as caught:
        call()
    return caught.value


def _predicts_like_the_estimator(model: Any) -> None:
    frame = FRAME[:50]
    assert (np.asarray(model.predict(frame)) == ESTIMATOR.predict(frame)).all()


@pytest.fixture
def hold_jobs(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """From the call on, no worker takes jobs: what would go to the broker is kept in the list
    returned (the job stays queued) until the test runs it as a worker would."""
    from celery import current_app

    def hold() -> list[int]:
        sent: list[int] = []
        monkeypatch.setattr(current_app.tasks[RUN_JOB], "delay", sent.append)
        return sent

    return hold


def _work(job_id: int) -> None:
    """What a worker does with the job's message."""
    from celery import current_app

    current_app.tasks[RUN_JOB].apply(args=[job_id])


def test_load_model_builds_the_bundle_on_demand_and_predicts(mlflow_as, data_scientist, tmp_path):
    version = _governed(data_scientist)
    client = mlflow_as(data_scientist)

    uri = client.get_model_version_download_uri("churn", "3")
    (job,) = _bundle_jobs(version)  # tasks run eagerly here: built within the request
    assert job.status == "succeeded", job.error
    bundle = Artifact.objects.get(pk=job.result["bundle_artifact"]["id"])
    assert bundle.derived and bundle.format == "mlflow"
    assert uri.endswith(f"/api/2.0/mlflow-artifacts/artifacts/bundles/{bundle.pk}")
    assert uri.startswith("http://")

    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/churn/3"))
    _predicts_like_the_estimator(mlflow.pyfunc.load_model(uri))
    assert client.get_model_version_download_uri("churn", "3") == uri
    assert len(_bundle_jobs(version)) == 1  # asked again: the same bundle, no new job

    # The files the client lists and fetches are the bundle's, byte for byte.
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    metadata = json.loads((local / "modelgate.json").read_text())
    assert metadata["model"] == "churn" and metadata["version"] == 3
    for name, entry in metadata["files"].items():
        assert hashlib.sha256((local / name).read_bytes()).hexdigest() == entry["sha256"], name
    # (The client names entries from the URI's parent: <bundle id>/MLmodel.)
    listed = {
        posixpath.basename(f.path): f for f in mlflow.artifacts.list_artifacts(artifact_uri=uri)
    }
    assert {"MLmodel", "model.pkl", "modelgate.json", "requirements.txt"} <= set(listed)
    assert not listed["MLmodel"].is_dir
    assert listed["MLmodel"].file_size == (local / "MLmodel").stat().st_size
    # Downloads are reads: nothing audited but what building the bundle changed.
    assert not AuditEvent.objects.filter(action__startswith="access.").exists()


def test_aliases_and_stages_resolve_to_the_bundle(mlflow_as, data_scientist, settings):
    version = _governed(data_scientist)
    approve_card(version)  # before the bundle: the card travels in it
    place(version, ModelVersion.Stage.PRODUCTION)
    services.alias_set(
        actor=actor_for(data_scientist),
        registered_model=version.registered_model,
        name="champion",
        version=version,
    )
    mlflow_as(data_scientist)
    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/churn@champion"))
    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/churn/Production"))
    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/churn/latest"))
    assert len(_bundle_jobs(version)) == 1


def test_while_the_bundle_is_built_the_client_gets_a_clear_refusal_then_loads(
    mlflow_as, data_scientist, viewer, hold_jobs
):
    version = _governed(data_scientist)
    client = mlflow_as(data_scientist)
    held_jobs = hold_jobs()

    refused = _refusal(lambda: client.get_model_version_download_uri("churn", "3"))
    (job,) = _bundle_jobs(version)
    assert held_jobs == [job.pk] and job.status == "queued"
    assert refused.error_code == "RESOURCE_CONFLICT"
    assert f"bundle job #{job.pk} was started just now and is queued." in refused.message
    assert "Retry in a minute" in refused.message
    assert f"/api/v1/models/churn/versions/3/jobs/{job.pk}/" in refused.message
    # Asking again (anyone who may view) reports the same job; no second one.
    mlflow_as(viewer)
    again = _refusal(lambda: mlflow.pyfunc.load_model("models:/churn/3"))
    assert again.error_code == "RESOURCE_CONFLICT"
    assert f"bundle job #{job.pk} is queued." in again.message
    assert len(_bundle_jobs(version)) == 1

    _work(job.pk)  # a worker takes it
    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/churn/3"))


def test_the_refusal_is_a_409_the_client_does_not_retry(live_server, data_scientist, hold_jobs):
    _governed(data_scientist)
    hold_jobs()
    status, _, body = _get(
        live_server,
        "/api/2.0/mlflow/model-versions/get-download-uri?name=churn&version=3",
        _token(data_scientist),
    )
    from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES

    assert status == 409 and status not in _TRANSIENT_FAILURE_RESPONSE_CODES
    assert json.loads(body)["error_code"] == "RESOURCE_CONFLICT"


def test_a_reader_cannot_start_the_build_and_is_told_who_can(mlflow_as, data_scientist, viewer):
    version = _governed(data_scientist)
    mlflow_as(viewer)
    refused = _refusal(lambda: mlflow.pyfunc.load_model("models:/churn/3"))
    assert refused.error_code == "RESOURCE_CONFLICT"
    assert "needs change permission on 'churn'" in refused.message
    assert '/api/v1/models/churn/versions/3/jobs/ with {"kind": "bundle"}' in refused.message
    assert _bundle_jobs(version) == []
    # Once someone who may change it asked, the reader loads it.
    mlflow_as(data_scientist)
    MlflowClient().get_model_version_download_uri("churn", "3")
    mlflow_as(viewer)
    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/churn/3"))


def test_a_stale_bundle_is_not_served(mlflow_as, data_scientist, tmp_path):
    version = _governed(data_scientist)
    client = mlflow_as(data_scientist)
    first = client.get_model_version_download_uri("churn", "3")
    # An ONNX conversion adds a file the bundle packs: the first bundle is no longer current.
    services.job_start(actor=actor_for(data_scientist), version=version, kind="convert_onnx")
    (onnx,) = Artifact.objects.filter(version=version, format="onnx")
    second = client.get_model_version_download_uri("churn", "3")
    assert second != first and len(_bundle_jobs(version)) == 2
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=second, dst_path=str(tmp_path)))
    assert (local / "artifacts" / onnx.filename).stat().st_size == onnx.size
    listed = mlflow.artifacts.list_artifacts(artifact_uri=f"{second}/artifacts")
    assert [(posixpath.basename(f.path), f.is_dir, f.file_size) for f in listed] == [
        (onnx.filename, False, onnx.size)
    ]
    top = {posixpath.basename(f.path): f for f in mlflow.artifacts.list_artifacts(second)}
    assert top["artifacts"].is_dir and top["artifacts"].file_size is None
    # The earlier bundle stays one consistent set for a client that already holds its URI.
    earlier = {posixpath.basename(f.path) for f in mlflow.artifacts.list_artifacts(first)}
    assert "MLmodel" in earlier and "artifacts" not in earlier
    _predicts_like_the_estimator(mlflow.pyfunc.load_model(first))


def test_a_version_that_cannot_be_bundled_says_why_and_starts_nothing(
    mlflow_as, data_scientist, ml_engineer
):
    class Shell:
        def __reduce__(self) -> tuple:
            import os

            return (os.system, ("true",))

    registered_model = make_model(data_scientist, "odd")
    onnx_only = make_version(data_scientist, registered_model)
    make_artifact(data_scientist, onnx_only, data=b"\x08\x07onnx-ish", filename="model.onnx")
    unsafe = make_version(data_scientist, registered_model)
    make_artifact(data_scientist, unsafe, data=pickle.dumps(Shell()), filename="model.pkl")
    client = mlflow_as(ml_engineer)

    refused = _refusal(lambda: client.get_model_version_download_uri("odd", "1"))
    assert refused.error_code == "INVALID_STATE"
    assert "scikit-learn models" in refused.message and "model.onnx" in refused.message
    refused = _refusal(lambda: client.get_model_version_download_uri("odd", "2"))
    assert refused.error_code == "INVALID_STATE"
    assert "not cleared: model.pkl (unsafe" in refused.message
    assert not PackagingJob.objects.filter(kind="bundle").exists()


def test_a_failed_build_says_why_and_is_not_restarted_by_asking_again(mlflow_as, data_scientist):
    registered_model = make_model(data_scientist, "broken")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    # Clears inspection (plain data), but is no model: the bundle job's check fails.
    make_artifact(data_scientist, version, data=pickle.dumps({"a": 1}), filename="model.pkl")
    client = mlflow_as(data_scientist)

    refused = _refusal(lambda: client.get_model_version_download_uri("broken", "1"))
    (job,) = _bundle_jobs(version)
    assert job.status == "failed" and job.error
    assert refused.error_code == "INVALID_STATE"
    assert f"failed (bundle job #{job.pk}): {job.error.strip()[:60]}" in refused.message
    assert '"force": true' in refused.message
    again = _refusal(lambda: client.get_model_version_download_uri("broken", "1"))
    assert again.message == refused.message and len(_bundle_jobs(version)) == 1


def test_files_still_being_inspected_answer_retry_later(mlflow_as, data_scientist, hold_jobs):
    hold_jobs()
    registered_model = make_model(data_scientist, "fresh")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    make_artifact(data_scientist, version, data=pickle.dumps(ESTIMATOR), filename="model.pkl")
    (inspection,) = PackagingJob.objects.filter(version=version, kind="inspect")
    assert inspection.status == "queued"  # held: no worker took it yet
    client = mlflow_as(data_scientist)
    refused = _refusal(lambda: client.get_model_version_download_uri("fresh", "1"))
    assert refused.error_code == "RESOURCE_CONFLICT"
    assert "still being inspected (model.pkl (inspection queued))" in refused.message
    assert not _bundle_jobs(version)


def test_an_invisible_bundle_is_a_404_and_the_refusal_is_audited(
    live_server, mlflow_as, data_scientist, outsider
):
    version = _governed(data_scientist)
    uri = mlflow_as(data_scientist).get_model_version_download_uri("churn", "3")
    bundle_id = _bundle_jobs(version)[0].result["bundle_artifact"]["id"]
    token = _token(outsider)
    for target in (
        f"/api/2.0/mlflow-artifacts/artifacts?path=bundles/{bundle_id}",
        f"/api/2.0/mlflow-artifacts/artifacts/bundles/{bundle_id}/MLmodel",
        "/api/2.0/mlflow/model-versions/get-download-uri?name=churn&version=3",
    ):
        status, _, body = _get(live_server, target, token)
        assert status == 404, target
        assert json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert AuditEvent.objects.filter(action="access.refused", actor_label="olivia").exists()
    mlflow_as(outsider)
    with pytest.raises(requests.HTTPError, match="404 Client Error"):
        mlflow.pyfunc.load_model(uri)
    # Missing bundles, files and paths outside bundles/ are 404 too; nobody is locked out.
    mine = _token(data_scientist)
    for target in (
        "/api/2.0/mlflow-artifacts/artifacts?path=bundles/999999",
        "/api/2.0/mlflow-artifacts/artifacts?path=",
        "/api/2.0/mlflow-artifacts/artifacts?path=sha256",
        f"/api/2.0/mlflow-artifacts/artifacts/bundles/{bundle_id}/no-such-file",
        f"/api/2.0/mlflow-artifacts/artifacts/bundles/{bundle_id}",
        f"/api/2.0/mlflow-artifacts/artifacts/bundles/{bundle_id}/artifacts",
    ):
        status, _, body = _get(live_server, target, mine)
        assert status == 404, target
        assert json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST", target


def test_paths_that_climb_are_absolute_or_hold_nul_are_refused(
    live_server, mlflow_as, data_scientist
):
    version = _governed(data_scientist)
    mlflow_as(data_scientist).get_model_version_download_uri("churn", "3")
    bundle_id = _bundle_jobs(version)[0].result["bundle_artifact"]["id"]
    token = _token(data_scientist)
    base = "/api/2.0/mlflow-artifacts/artifacts"
    for target in (
        f"{base}?path=bundles/{bundle_id}/../{bundle_id}",
        f"{base}?path=/bundles/{bundle_id}",
        f"{base}?path=bundles\\{bundle_id}",
        f"{base}/bundles/{bundle_id}/../{bundle_id}/MLmodel",
        f"{base}/bundles/{bundle_id}/./MLmodel",
        f"{base}/bundles/{bundle_id}/%2e%2e/{bundle_id}/MLmodel",
    ):
        status, _, body = _get(live_server, target, token)
        assert status == 400, target
        assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE", (target, body)
    # NUL is refused for every API before any view (core.edge.RejectNulBytes).
    for target in (f"{base}?path=bundles/{bundle_id}/%00", f"{base}/bundles/{bundle_id}/M%00"):
        assert _get(live_server, target, token)[0] == 400, target
    status, headers, body = _get(live_server, f"{base}/bundles/{bundle_id}/MLmodel", token)
    assert status == 200 and body.startswith(b"artifact_path: model")
    assert headers["Content-Length"] == str(len(body))
    status, _, _ = _get(live_server, f"{base}/bundles/{bundle_id}/MLmodel", "mg_nope")
    assert status == 401


def test_a_zip_a_user_uploaded_is_never_served(live_server, mlflow_as, data_scientist):
    registered_model = make_model(data_scientist, "zipped")
    version = make_version(data_scientist, registered_model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("MLmodel", "flavors:\n  python_function:\n    loader_module: x\n")
    uploaded = make_artifact(data_scientist, version, data=buffer.getvalue(), filename="m.zip")
    assert uploaded.format == "mlflow" and not uploaded.derived
    token = _token(data_scientist)
    for target in (
        f"/api/2.0/mlflow-artifacts/artifacts?path=bundles/{uploaded.pk}",
        f"/api/2.0/mlflow-artifacts/artifacts/bundles/{uploaded.pk}/MLmodel",
    ):
        status, _, body = _get(live_server, target, token)
        assert status == 404 and json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    refused = _refusal(
        lambda: mlflow_as(data_scientist).get_model_version_download_uri("zipped", "1")
    )
    assert refused.error_code == "INVALID_STATE" and "scikit-learn models" in refused.message


def test_a_source_elsewhere_comes_back_unchanged(mlflow_as, data_scientist):
    registered_model = make_model(data_scientist, "remote")
    for source in ("s3://bucket/model", "gs://bucket/m", "file:///etc"):
        make_version(data_scientist, registered_model, source=source)
    client = mlflow_as(data_scientist)
    assert [client.get_model_version_download_uri("remote", str(n)) for n in (1, 2, 3)] == [
        "s3://bucket/model",
        "gs://bucket/m",
        "file:///etc",
    ]
    assert not PackagingJob.objects.filter(kind="bundle").exists()


def test_a_copied_version_holds_its_own_files(mlflow_as, data_scientist):
    """MLflow's copy_model_version (a create whose source is models:/<name>/<n>) copies the
    original's files into the new version, as MLflow copies the storage location: the copy is
    loaded from its own bundle, under its own content digest, so approving the copy approves
    these files and not whatever the original holds later."""
    original = _governed(data_scientist)
    copies = make_model(data_scientist, "copies")
    client = mlflow_as(data_scientist)
    copy = client.copy_model_version("models:/churn/3", "copies")
    assert (copy.name, copy.version, copy.source) == ("copies", "1", "models:/churn/3")
    copied = Artifact.objects.get(version__registered_model__name="copies")
    stored = original.artifacts.get(derived=False)
    assert (copied.sha256, copied.storage_key, copied.filename) == (
        stored.sha256,
        stored.storage_key,
        stored.filename,
    )
    assert AuditEvent.objects.filter(action="artifact.copied").count() == 1
    uri = client.get_model_version_download_uri("copies", "1")
    assert uri != client.get_model_version_download_uri("churn", "3")
    _predicts_like_the_estimator(mlflow.pyfunc.load_model("models:/copies/1"))

    # A source naming a version the user cannot see copies nothing and creates nothing.
    copier = UserFactory(username="copier")
    for perm in (Perm.VIEW, Perm.CHANGE):
        permissions.grant(perm, copies, user=copier, granted_by=superuser())
    refused = _refusal(lambda: mlflow_as(copier).create_model_version("copies", "models:/churn/3"))
    assert refused.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert AuditEvent.objects.filter(action="access.refused").exists()
    assert ModelVersion.objects.filter(registered_model__name="copies").count() == 1


def test_a_reference_to_another_version_is_not_loaded(mlflow_as, data_scientist):
    """A version registered through /api/v1 with a models:/ source holds no files: loading
    what the reference names now would serve another version's (or a moving alias's or
    stage's) content under this version's approvals."""
    _governed(data_scientist)
    references = make_model(data_scientist, "references")
    for source in ("models:/churn/3", "models:/churn@champion", "models:/churn/Production"):
        make_version(data_scientist, references, source=source)  # through /api/v1: no copy
    client = mlflow_as(data_scientist)
    for number in ("1", "2", "3"):
        refused = _refusal(lambda n=number: client.get_model_version_download_uri("references", n))
        assert refused.error_code == "INVALID_STATE" and "copy_model_version" in refused.message


def test_sources_that_move_are_refused_and_a_copy_without_files_takes_the_source(
    mlflow_as, data_scientist
):
    original = make_model(data_scientist, "remote-original")
    make_version(data_scientist, original, source="s3://bucket/reviewed")
    make_model(data_scientist, "copies")
    client = mlflow_as(data_scientist)
    for source in (
        "models:/remote-original/latest",
        "models:/remote-original/Production",
        "models:/m-0a1b",
    ):
        refused = _refusal(lambda s=source: client.create_model_version("copies", s))
        assert refused.error_code == "INVALID_PARAMETER_VALUE", source
    copy = client.copy_model_version("models:/remote-original/1", "copies")
    assert copy.source == "s3://bucket/reviewed"
    assert client.get_model_version_download_uri("copies", copy.version) == "s3://bucket/reviewed"


def test_a_file_streams_out_of_the_zip(api, data_scientist, mlflow_as):
    version = _governed(data_scientist)
    mlflow_as(data_scientist).get_model_version_download_uri("churn", "3")
    bundle = Artifact.objects.get(pk=_bundle_jobs(version)[0].result["bundle_artifact"]["id"])
    response = api(data_scientist).get(
        f"/api/2.0/mlflow-artifacts/artifacts/bundles/{bundle.pk}/model.pkl"
    )
    assert response.status_code == 200 and response.streaming  # never read whole
    body = b"".join(response.streaming_content)
    response.close()
    assert pickle.loads(body).coef_.tolist() == ESTIMATOR.coef_.tolist()
    assert response["Content-Length"] == str(len(body))
