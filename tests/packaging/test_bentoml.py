"""The BentoML job, through the API with tasks run eagerly: a cleared scikit-learn version
becomes a .bentomodel archive that BentoML itself imports, loads and predicts with (in a
process of its own, with a model store of its own), carrying the signature and the card as
metadata; the archive is inspected member by member like any file; what cannot be vouched for
is refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from registry.models import Artifact
from registry.packaging import bento
from tests.factories import actor_for
from tests.packaging.conftest import SIGNATURE, V, X, Y, dump, packaging_check

pytestmark = pytest.mark.django_db
pytest.importorskip("bentoml")

_IMPORT_AND_PREDICT = """
import json, sys
import numpy as np
import bentoml
model = bentoml.models.import_model(sys.argv[1])
rows = np.asarray(json.loads(sys.argv[2]))
loaded = bentoml.sklearn.load_model(model.tag)
from pathlib import Path
folder = Path(model.path)
out = {"tag": str(model.tag), "labels": model.info.labels, "metadata": model.info.metadata,
       "module": model.info.module, "predict": loaded.predict(rows).tolist(),
       "signatures": sorted(model.info.signatures),
       "files": {p.name: p.read_text() for p in folder.iterdir() if p.suffix in (".json", ".md")}}
if hasattr(loaded, "predict_proba"):
    out["predict_proba"] = loaded.predict_proba(rows).tolist()
print(json.dumps(out, default=str))
"""


def _import_with_bentoml(client, artifact: Artifact, tmp_path) -> dict:
    """Download the archive and import, load and run it with BentoML in a fresh process and
    an empty model store."""
    r = client.get(f"{V}artifacts/{artifact.pk}/download/")
    assert r.status_code == 200
    path = tmp_path / artifact.filename
    path.write_bytes(b"".join(r.streaming_content))
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store"), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_AND_PREDICT, str(path), json.dumps(X[:50].tolist())],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_bentoml_archive_imports_loads_and_predicts_with_bentoml(
    setup, tmp_path, data_scientist, outsider, api
):
    from cards import services as card_services
    from cards.models import ModelCard

    forest = RandomForestClassifier(n_estimators=8, random_state=0).fit(X, Y)
    client, run = setup(dump(forest, "joblib", tmp_path), "forest.joblib")
    card_services.card_update(
        actor=actor_for(data_scientist),
        card=ModelCard.objects.get(),
        changes={"sections": {"limitations": "Only for churn."}},
    )
    job = run("bentoml")
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["methods"] == ["predict", "predict_proba"] and result["rows"] == 20
    assert result["tag"].startswith("churn:v1-") and "bentoml" in result["versions"]
    archive = Artifact.objects.get(pk=result["bentoml_artifact"]["id"])
    assert (archive.format, archive.derived, archive.derived_from.filename) == (
        "bentoml",
        True,
        "forest.joblib",
    )
    assert archive.filename.endswith(".bentomodel")
    # Inspected like any file, member by member: its pickle was scanned and found safe.
    inspection = archive.jobs.get(kind="inspect")
    assert (inspection.status, archive.safety) == ("succeeded", "safe"), inspection.result
    assert inspection.result["scan"]["pickles"] == 1

    found = _import_with_bentoml(client, archive, tmp_path)
    assert found["tag"] == result["tag"] and found["module"] == "bentoml.sklearn"
    assert found["predict"] == forest.predict(X[:50]).tolist()
    assert np.array_equal(np.asarray(found["predict_proba"]), forest.predict_proba(X[:50]))
    assert found["signatures"] == ["predict", "predict_proba"]
    assert found["labels"] == {"modelgate.model": "churn", "modelgate.version": "1"}
    metadata = found["metadata"]
    assert metadata["modelgate"]["model"] == "churn" and metadata["modelgate"]["version"] == 1
    assert metadata["modelgate"]["source_artifact"]["sha256"] == archive.derived_from.sha256
    assert metadata["signature"] == archive.version.signature
    # The card travels as files in the model's folder, named in the metadata.
    card = json.loads(found["files"]["model_card.json"])
    assert card["sections"]["limitations"] == "Only for churn."
    assert "Only for churn." in found["files"]["model_card.md"]
    entry = metadata["model_card"]["files"]["model_card.json"]
    assert (entry["status"], entry["revision"]) == (card["status"], card["revision"])
    assert entry["sha256"] == hashlib.sha256(found["files"]["model_card.json"].encode()).hexdigest()

    # Asked again for the same input: the earlier job answers. A bundle made afterwards does
    # not ship the archive (a packaging of the version, not one of its files).
    assert run("bentoml")["id"] == job["id"]
    bundle = run("bundle")
    assert bundle["status"] == "succeeded", bundle
    assert not any(f.endswith(".bentomodel") for f in bundle["result"]["files"])
    # The same permission as any artifact: someone without access to the model gets a 404.
    assert api(outsider).get(f"{V}artifacts/{archive.pk}/download/").status_code == 404


def test_a_card_change_or_a_forced_rerun_makes_an_archive_under_a_tag_of_its_own(
    setup, tmp_path, data_scientist
):
    from cards import services as card_services
    from cards.models import ModelCard

    model = LogisticRegression().fit(X, Y)
    _, run = setup(dump(model, "pickle", tmp_path), "model.pkl")
    first = run("bentoml")
    assert first["status"] == "succeeded", first
    card_services.card_update(
        actor=actor_for(data_scientist),
        card=ModelCard.objects.get(),
        changes={"sections": {"limitations": "A new limit."}},
    )
    second = run("bentoml")
    assert second["id"] != first["id"] and second["status"] == "succeeded"
    assert second["result"]["tag"] != first["result"]["tag"]
    assert Artifact.objects.filter(format="bentoml").count() == 2
    # Forced, the same input makes an archive under a tag of its own (its creation time
    # differs, so its bytes do): both import into one BentoML store.
    forced = run("bentoml", force=True)
    assert forced["status"] == "succeeded" and forced["id"] != second["id"]
    assert forced["result"]["tag"] != second["result"]["tag"]
    assert forced["result"]["tag"].rsplit("-", 1)[0] == second["result"]["tag"].rsplit("-", 1)[0]


def test_a_regressor_is_packaged_with_predict_only(setup, tmp_path):
    model = LinearRegression().fit(X, X[:, 0] * 2)
    signature = {**SIGNATURE, "outputs": [{"name": "y", "type": "double"}]}
    client, run = setup(dump(model, "pickle", tmp_path), "reg.pkl", signature=signature)
    job = run("bentoml")
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["methods"] == ["predict"]
    archive = Artifact.objects.get(format="bentoml")
    found = _import_with_bentoml(client, archive, tmp_path)
    assert np.allclose(found["predict"], model.predict(X[:50]), rtol=0, atol=1e-12)


def test_what_the_scan_did_not_clear_is_never_packaged(setup):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/modelgate-pwned-by-bentoml",))

    _, run = setup(pickle.dumps(Evil()), "evil.pkl")
    job = run("bentoml")
    assert job["status"] == "failed" and "allow-list" in job["error"]
    assert not Artifact.objects.filter(format="bentoml").exists()
    assert not os.path.exists("/tmp/modelgate-pwned-by-bentoml")


def test_without_bentoml_the_job_says_what_to_install(setup, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bentoml" else real(name, *a)
    )
    _, run = setup(dump(LogisticRegression().fit(X, Y), "pickle", tmp_path), "m.pkl")
    job = run("bentoml")
    assert job["status"] == "failed" and "modelgate[bentoml]" in job["error"]
    assert not Artifact.objects.filter(format="bentoml").exists()


def test_a_model_without_numeric_rows_to_check_is_refused(setup, tmp_path):
    _, run = setup(
        dump(LogisticRegression().fit(X, Y), "pickle", tmp_path),
        "m.pkl",
        input_example=[{"a": "x", "b": 1.0, "c": 2.0, "d": 3.0}],
        signature={
            "inputs": [{"name": "a", "type": "string"}, *SIGNATURE["inputs"][1:]],
            "outputs": SIGNATURE["outputs"],
        },
    )
    job = run("bentoml")
    assert job["status"] == "failed" and "non-numeric" in job["error"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("churn", "churn"),
        ("Credit Risk/EU", "credit-risk-eu"),
        ("模型", "model"),
        ("_x_", "x"),
        ("a" * 80, "a" * 63),
    ],
)
def test_tag_names_follow_bentoml_rules(name, expected):
    assert bento.tag_part(name, "model") == expected


def _bentomodel(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    return buffer.getvalue()


class _Shell:
    def __reduce__(self):
        return (os.system, ("true",))


_YAML = b"name: m\nversion: v1\nmodule: bentoml.sklearn\n"


@pytest.mark.parametrize(
    "members, links, verdict, why",
    [
        (
            {"./model.yaml": _YAML, "./saved_model.pkl": pickle.dumps(_Shell())},
            (),
            "unsafe",
            "saved_model.pkl: posix",
        ),
        (
            {"./model.yaml": b"module: bentoml.picklable_model\n", "./saved_model.pkl": b"\x80."},
            (),
            "unsafe",
            "loads through bentoml.picklable_model",
        ),
        ({"./model.yaml": _YAML, "./src/x.py": b"import os"}, (), "suspicious", "src/x.py"),
        ({"./model.yaml": _YAML}, ("./saved_model.pkl",), "suspicious", "not a plain file"),
        ({"../model.yaml": _YAML}, (), "suspicious", "not a plain file"),
        ({"./saved_model.pkl": pickle.dumps([1])}, (), "suspicious", "no model.yaml"),
        (
            {"./model.yaml": _YAML, ".\\model.yaml": b"module: antigravity\n"},
            (),
            "suspicious",
            "not a plain file",
        ),
        (
            {"./model.yaml": _YAML, "model.yaml": b"module: bentoml.sklearn\n"},
            (),
            "suspicious",
            "more than once",
        ),
    ],
)
def test_an_uploaded_bentomodel_that_could_run_code_is_not_safe(
    setup, members, links, verdict, why, ml_engineer
):
    setup(_bentomodel(members, links), "uploaded.bentomodel")
    artifact = Artifact.objects.get(filename="uploaded.bentomodel")
    scan = artifact.jobs.get(kind="inspect").result["scan"]
    assert artifact.format == "bentoml" and artifact.safety == verdict, scan
    assert any(why in line for line in scan["dangerous"] + scan["problems"]), scan
    check = packaging_check(ml_engineer)
    assert not check.passed and "uploaded.bentomodel" in check.message


def test_a_truncated_bentomodel_is_not_safe(setup):
    data = _bentomodel({"./model.yaml": _YAML, "./saved_model.pkl": pickle.dumps([1] * 1000)})
    setup(data[: len(data) // 2], "cut.bentomodel")
    artifact = Artifact.objects.get(filename="cut.bentomodel")
    scan = artifact.jobs.get(kind="inspect").result["scan"]
    assert artifact.safety != "safe" and any("could not be read" in p for p in scan["problems"])


def test_an_archive_that_would_inflate_past_the_limit_is_refused_before_inflating(setup, settings):
    settings.SCAN_MAX_INFLATED_BYTES = 1_000_000
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        info = tarfile.TarInfo("./model.yaml")
        info.size = len(_YAML)
        archive.addfile(info, io.BytesIO(_YAML))
        info = tarfile.TarInfo("./notes.txt")
        info.size = 5_000_000
        archive.addfile(info, io.BytesIO(b"\0" * info.size))
    assert len(buffer.getvalue()) < 10_000  # zeros compress well: a small bomb
    setup(buffer.getvalue(), "bomb.bentomodel")
    artifact = Artifact.objects.get(filename="bomb.bentomodel")
    scan = artifact.jobs.get(kind="inspect").result["scan"]
    assert artifact.safety == "unsafe" and "notes.txt" in scan["limit"], scan


def test_a_card_too_large_for_model_yaml_still_travels_and_passes_the_inspection(
    setup, tmp_path, data_scientist
):
    from cards import content as card_content
    from cards import services as card_services
    from cards.models import ModelCard

    # Every section full of characters YAML escapes (ten bytes each): about 1.9 MB as YAML,
    # past the 1 MB of model.yaml the inspection reads, were the card in the metadata.
    _, run = setup(dump(LogisticRegression().fit(X, Y), "pickle", tmp_path), "m.pkl")
    card_services.card_update(
        actor=actor_for(data_scientist),
        card=ModelCard.objects.get(),
        changes={"sections": {key: "\U0001f600" * 19_000 for key in card_content.SECTION_KEYS}},
    )
    job = run("bentoml")
    assert job["status"] == "succeeded", job["error"]
    archive = Artifact.objects.get(format="bentoml")
    assert archive.safety == "safe", archive.jobs.get(kind="inspect").result["scan"]
