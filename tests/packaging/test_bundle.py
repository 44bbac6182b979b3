"""Bundles, format comparison, skops and TorchScript jobs, through the API with tasks run
eagerly. A bundle unpacks into an MLflow model directory that the MLflow library itself loads
and predicts with; every file's sha256 is in its metadata; it rebuilds only when what it packs
changes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import skops.io
import yaml
from django.utils import timezone
from rest_framework.test import APIClient
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.models import Artifact, PackagingJob
from tests.factories import actor_for
from tests.packaging.conftest import COLUMNS, V, X, Y, dump, packaging_check

pytestmark = pytest.mark.django_db


def _download(client, artifact_id: int, tmp_path):
    artifact = Artifact.objects.get(pk=artifact_id)
    r = client.get(f"{V}artifacts/{artifact.pk}/download/")
    assert r.status_code == 200, r
    data = b"".join(r.streaming_content)
    assert hashlib.sha256(data).hexdigest() == artifact.sha256
    target = tmp_path / "bundle"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(target)
    return target


def test_a_bundle_loads_and_predicts_with_mlflow(setup, tmp_path, monkeypatch, outsider, api):
    import mlflow.pyfunc
    import onnxruntime
    import pandas as pd

    forest = RandomForestClassifier(n_estimators=8, random_state=0).fit(X, Y)
    client, run = setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    assert run("convert_onnx")["status"] == "succeeded"
    job = run("bundle")
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["flavors"] == ["onnx", "python_function", "sklearn"]
    assert any(r.startswith("scikit-learn==") for r in result["requirements"])
    bundle = Artifact.objects.get(pk=result["bundle_artifact"]["id"])
    assert bundle.format == "mlflow" and bundle.filename == "churn-v1-bundle.zip"
    assert bundle.derived_from.filename == "forest.joblib"

    target = _download(client, bundle.pk, tmp_path)
    metadata = json.loads((target / "modelgate.json").read_text())
    assert metadata["model"] == "churn" and metadata["version"] == 1
    stored_signature = bundle.version.signature
    assert metadata["signature"] == stored_signature
    assert metadata["estimator"] == "RandomForestClassifier"
    assert set(metadata["files"]) == {
        "MLmodel",
        "model.pkl",
        "requirements.txt",
        "python_env.yaml",
        "conda.yaml",
        "artifacts/forest.onnx",
        "model_card.md",
        "model_card.json",
    }
    for name, entry in metadata["files"].items():
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == entry["sha256"], name
    mlmodel = yaml.safe_load((target / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "pickle"
    assert json.loads(mlmodel["signature"]["inputs"]) == stored_signature["inputs"]
    assert "# churn (version 1)" in (target / "model_card.md").read_text()

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    loaded = mlflow.pyfunc.load_model(str(target))
    frame = pd.DataFrame(X[:50], columns=COLUMNS)
    assert (np.asarray(loaded.predict(frame)) == forest.predict(X[:50])).all()
    assert loaded.metadata.get_input_schema().input_names() == COLUMNS
    session = onnxruntime.InferenceSession(str(target / mlmodel["flavors"]["onnx"]["data"]))
    labels = session.run(None, {session.get_inputs()[0].name: X[:50].astype(np.float32)})[0]
    assert (labels == forest.predict(X[:50])).all()

    # The same permission as any artifact: someone without access to the model gets a 404.
    r = api(outsider).get(f"{V}artifacts/{bundle.pk}/download/")
    assert r.status_code == 404


def test_a_bundle_rebuilds_only_when_what_it_packs_changes(setup, tmp_path, data_scientist):
    from cards import services as card_services
    from cards.models import ModelCard

    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    client, run = setup(dump(pipeline, "pickle", tmp_path), "pipe.pkl")
    first = run("bundle")
    assert first["status"] == "succeeded", first
    assert "onnx" not in first["result"]["flavors"]  # no ONNX file yet: no ONNX flavor
    assert run("bundle")["id"] == first["id"]
    card = ModelCard.objects.get()
    card_services.card_update(
        actor=actor_for(data_scientist),
        card=card,
        changes={"sections": {"limitations": "Only for churn."}},
    )
    second = run("bundle")
    assert second["id"] != first["id"] and second["status"] == "succeeded"
    assert (
        second["result"]["bundle_artifact"]["sha256"]
        != first["result"]["bundle_artifact"]["sha256"]
    )
    target = _download(client, second["result"]["bundle_artifact"]["id"], tmp_path)
    assert "Only for churn." in (target / "model_card.md").read_text()
    # A plain pickle travels as it was uploaded.
    assert (
        hashlib.sha256((target / "model.pkl").read_bytes()).hexdigest()
        == Artifact.objects.get(filename="pipe.pkl").sha256
    )
    forced = run("bundle", force=True)
    assert forced["id"] != second["id"] and forced["status"] == "succeeded"
    # A reproducible zip: forcing the same input stores no second copy.
    assert forced["result"]["bundle_artifact"]["id"] == second["result"]["bundle_artifact"]["id"]


def test_a_skops_model_is_inspected_converted_and_bundled_with_its_trusted_types(
    setup, tmp_path, monkeypatch
):
    import mlflow.pyfunc
    import pandas as pd

    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    client, run = setup(dump(forest, "skops", tmp_path), "forest.skops")
    inspected = PackagingJob.objects.get(kind="inspect")
    assert inspected.status == "succeeded" and inspected.result["format"] == "skops"
    assert "sklearn.tree._tree.Tree" in inspected.result["scan"]["imports"]
    assert Artifact.objects.get(filename="forest.skops").safety == "safe"
    converted = run("convert_onnx")
    assert converted["status"] == "succeeded", converted
    assert converted["result"]["trusted_types"] == ["sklearn.tree._tree.Tree"]
    job = run("bundle")
    assert job["status"] == "succeeded", job
    target = _download(client, job["result"]["bundle_artifact"]["id"], tmp_path)
    sklearn_flavor = yaml.safe_load((target / "MLmodel").read_text())["flavors"]["sklearn"]
    assert sklearn_flavor["serialization_format"] == "skops"
    assert sklearn_flavor["skops_trusted_types"] == ["sklearn.tree._tree.Tree"]
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    predictions = mlflow.pyfunc.load_model(str(target)).predict(
        pd.DataFrame(X[:10], columns=COLUMNS)
    )
    assert (np.asarray(predictions) == forest.predict(X[:10])).all()


def _evil_skops(tmp_path) -> bytes:
    """A real skops file whose schema was edited to call os.system on load."""
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "ok.skops"
    skops.io.dump(FunctionTransformer(np.log1p), path)
    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "schema.json":
                data = data.replace(b'"numpy"', b'"posix"').replace(b'"log1p"', b'"system"')
            target.writestr(info, data)
    return out.getvalue()


def test_a_malicious_skops_file_is_unsafe_and_never_loaded(setup, tmp_path):
    client, run = setup(_evil_skops(tmp_path), "evil.skops")
    inspected = PackagingJob.objects.get(kind="inspect")
    assert inspected.result["scan"]["verdict"] == "unsafe"
    assert "posix.system" in inspected.result["scan"]["dangerous"]
    for kind in ("convert_onnx", "bundle", "compare_formats"):
        job = run(kind)
        assert job["status"] == "failed" and "The file is unsafe: posix.system" in job["error"], job
    assert not Artifact.objects.filter(format__in=("onnx", "mlflow")).exists()


def test_compare_formats_times_every_format(setup, tmp_path):
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    _, run = setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    job = run("compare_formats")
    assert job["status"] == "succeeded", job
    table = {row["format"]: row for row in job["result"]["formats"]}
    assert list(table) == ["pickle", "joblib", "skops", "onnx"]
    for row in table.values():
        assert "error" not in row, row
        assert row["size"] > 0 and row["save_ms"] >= 0 and row["load_ms"] >= 0
        assert row["predict_ms"] > 0
    assert not Artifact.objects.exclude(filename="forest.joblib").exists()  # nothing stored


def test_compare_formats_reports_a_format_that_cannot_hold_the_model(setup, tmp_path):
    from sklearn.semi_supervised import LabelSpreading

    _, run = setup(dump(LabelSpreading().fit(X, Y), "pickle", tmp_path), "ls.pkl")
    job = run("compare_formats")
    assert job["status"] == "succeeded", job
    table = {row["format"]: row for row in job["result"]["formats"]}
    assert "skl2onnx cannot convert LabelSpreading" in table["onnx"]["error"]
    assert table["pickle"]["size"] > 0


def _torchscript_like() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("net/code/__torch__.py", "")
        archive.writestr("net/constants.pkl", b"\x80\x02).")
        archive.writestr("net/data.pkl", b"\x80\x02}.")
    return out.getvalue()


def test_torchscript_without_pytorch_fails_fast(setup, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    _, run = setup(_torchscript_like(), "net.pt")
    assert Artifact.objects.get().format == "torchscript"
    job = run("torchscript")
    assert job["status"] == "failed" and "PyTorch is not installed" in job["error"]
    assert "modelgate[torch]" in job["error"] and job["progress"] == 0


def test_torchscript_is_validated_when_pytorch_is_installed(setup, tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    _, run = setup(path.read_bytes(), "net.pt")
    job = run("torchscript")
    assert job["status"] == "succeeded", job
    assert job["result"]["output_shape"] == [20, 3]


def test_bundle_refuses_what_cannot_be_loaded(setup, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/modelgate-pwned-by-bundle",))

    _, run = setup(pickle.dumps(Evil()), "evil.pkl")
    job = run("bundle")
    assert job["status"] == "failed" and "The file is unsafe" in job["error"]
    assert not os.path.exists("/tmp/modelgate-pwned-by-bundle")
    assert not Artifact.objects.filter(format="mlflow").exists()


def test_the_version_page_shows_results_and_starts_jobs(
    setup,
    tmp_path,
    client,
    data_scientist,
    viewer,
    django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    _, run = setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    for kind in ("convert_onnx", "compare_formats", "bundle"):
        assert run(kind)["status"] == "succeeded"
    page = "/models/churn/versions/1/"
    client.force_login(data_scientist)
    with django_assert_max_num_queries(20):
        html = client.get(page).content.decode()
    assert "ONNX parity" in html and "Label agreement" in html
    assert "Formats compared" in html and '<th scope="row">skops</th>' in html
    assert "Download churn-v1-bundle.zip" in html and 'name="kind"' in html

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{page}jobs/", {"kind": "compare_formats", "force": "on"}, follow=True)
    assert r.redirect_chain[-1][0] == f"{page}#jobs"
    assert "Compare formats job #" in r.content.decode() and "queued" in r.content.decode()
    assert PackagingJob.objects.filter(kind="compare_formats").count() == 2
    r = client.post(f"{page}jobs/", {"kind": "teleport"}, follow=True)
    assert "kind must be one of" in r.content.decode()  # a message, nothing queued, no 500
    assert PackagingJob.objects.count() == 7  # with the inspections of the ONNX file and bundle

    client.force_login(viewer)
    html = client.get(page).content.decode()
    assert "ONNX parity" in html and 'name="kind"' not in html  # reads results, no form
    assert client.post(f"{page}jobs/", {"kind": "bundle"}).status_code == 403
    assert PackagingJob.objects.count() == 7  # with the inspections of the ONNX file and bundle


def test_readiness_names_trusted_types_and_blocks_unsafe_files(
    setup, tmp_path, ml_engineer, admin_user
):
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    _, run = setup(dump(forest, "skops", tmp_path), "forest.skops")
    run("convert_onnx")
    check = packaging_check(ml_engineer)
    assert check.passed and "sklearn.tree._tree.Tree" in check.message

    from tests.factories import make_artifact

    version = Artifact.objects.first().version
    make_artifact(ml_engineer, version, _evil_skops(tmp_path), "evil.skops")  # inspected
    evil = Artifact.objects.get(filename="evil.skops")
    check = packaging_check(ml_engineer)
    assert not check.passed and "evil.skops (unsafe: posix.system)" in check.message
    Artifact.objects.filter(pk=evil.pk).update(trusted_at=timezone.now(), trusted_by=admin_user)
    assert packaging_check(ml_engineer).passed


def test_a_later_success_clears_an_earlier_failure(setup, tmp_path, ml_engineer, settings):
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    _, run = setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    settings.PARITY_MIN_AGREEMENT = 1.01  # no model can agree that well
    assert run("convert_onnx")["status"] == "failed"
    check = packaging_check(ml_engineer)
    assert not check.passed and "convert_onnx" in check.message
    settings.PARITY_MIN_AGREEMENT = 0.99
    assert run("convert_onnx", force=True)["status"] == "succeeded"
    assert packaging_check(ml_engineer).passed


def test_a_bundle_is_inspected_member_by_member_and_then_clears_readiness(
    setup, tmp_path, ml_engineer
):
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    _, run = setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    assert run("convert_onnx")["status"] == "succeeded"
    assert run("bundle")["status"] == "succeeded"
    bundle = Artifact.objects.get(format="mlflow")
    inspection = bundle.jobs.get(kind="inspect")
    assert (inspection.status, bundle.safety, bundle.derived) == ("succeeded", "safe", True)
    assert inspection.result["scan"]["pickles"] == 1  # model.pkl, scanned inside the zip
    assert packaging_check(ml_engineer).passed


def _mlflow_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class _Shell:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize(
    "members, why",
    [
        (
            {"MLmodel": b"flavors:\n  python_function:\n    loader_module: evil.loader\n"},
            "loads through evil.loader",
        ),
        (
            {
                "MLmodel": b"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
                b"    code: code\n",
                "code/x.py": b"import os",
            },
            "ships code",
        ),
        (
            {
                "MLmodel": b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n",
                "model.pkl": pickle.dumps(_Shell()),
            },
            "model.pkl: posix",
        ),
    ],
)
def test_an_uploaded_mlflow_zip_that_would_run_code_is_unsafe(setup, members, why, ml_engineer):
    setup(_mlflow_zip(members), "model.zip")
    artifact = Artifact.objects.get(filename="model.zip")
    scan = artifact.jobs.get(kind="inspect").result["scan"]
    assert artifact.format == "mlflow" and artifact.safety == "unsafe", scan
    assert any(why in line for line in scan["dangerous"]), scan
    check = packaging_check(ml_engineer)
    assert not check.passed and "model.zip (unsafe" in check.message


def test_a_bundle_asked_for_while_the_onnx_conversion_is_queued_waits_and_ships_its_flavor(
    setup, tmp_path, data_scientist, settings, django_capture_on_commit_callbacks
):
    """With two workers a bundle used to finish before the ONNX conversion of the same file
    and lack the ONNX flavor; now it waits for the conversion, and the conversion's end
    sends it to a worker."""
    from datetime import timedelta

    from registry.models import ModelVersion
    from registry.services import job_start
    from registry.tasks import run_job, sweep

    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    actor, version = actor_for(data_scientist), ModelVersion.objects.get()
    with django_capture_on_commit_callbacks(execute=False):  # both queued, neither taken yet
        convert, _ = job_start(actor=actor, version=version, kind="convert_onnx")
        bundle, _ = job_start(actor=actor, version=version, kind="bundle")
    # The second worker takes the bundle's message first.
    assert run_job.apply(args=[bundle.pk]).get() == "nothing to do"
    bundle.refresh_from_db()
    assert (bundle.status, bundle.waits_for_id, bundle.attempts) == ("queued", convert.pk, 0)
    assert f"waiting for Convert to ONNX #{convert.pk} of the same file" in bundle.log
    shown = APIClient()
    shown.force_authenticate(data_scientist)
    jobs = {
        j["id"]: j
        for j in shown.get(
            f"/api/v1/models/{version.registered_model.name}/versions/1/jobs/"
        ).json()["results"]
    }
    assert jobs[bundle.pk]["waits_for"] == convert.pk and jobs[bundle.pk]["heartbeat_at"] is None
    PackagingJob.objects.filter(pk=bundle.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.SWEEP_AFTER + 1)
    )
    assert sweep.apply().get()["requeued"] == 0  # waiting is not lost: not sent again
    with django_capture_on_commit_callbacks(execute=True):
        assert run_job.apply(args=[convert.pk]).get() == "succeeded"
    bundle.refresh_from_db()
    assert bundle.status == "succeeded", bundle.error
    assert bundle.result["flavors"] == ["onnx", "python_function", "sklearn"]
    onnx = Artifact.objects.get(format="onnx")
    assert f"artifacts/{onnx.filename}" in bundle.result["files"]
    # Derived files are inspected like uploads: the ONNX file and the bundle both are.
    stored = Artifact.objects.get(pk=bundle.result["bundle_artifact"]["id"])
    assert (onnx.safety, stored.safety) == ("safe", "safe")
    assert stored.jobs.get(kind="inspect").status == "succeeded"


def test_a_bundle_waiting_for_a_conversion_that_is_cancelled_runs_without_onnx(
    setup, tmp_path, data_scientist, django_capture_on_commit_callbacks
):
    from registry.models import ModelVersion
    from registry.services import job_cancel, job_start
    from registry.services.jobs import job_claim
    from registry.tasks import run_job

    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    actor, version = actor_for(data_scientist), ModelVersion.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        convert, _ = job_start(actor=actor, version=version, kind="convert_onnx")
        bundle, _ = job_start(actor=actor, version=version, kind="bundle")
    job_claim(convert.pk, "convert-task")  # running on another worker
    assert run_job.apply(args=[bundle.pk]).get() == "nothing to do"
    with django_capture_on_commit_callbacks(execute=True):
        job_cancel(actor=actor, job=convert)
    bundle.refresh_from_db()
    assert bundle.status == "succeeded" and bundle.result["flavors"] == [
        "python_function",
        "sklearn",
    ]
