"""manage.py import_mlflow against a real `mlflow server` (started here, populated with the
MLflow client): what it copies, idempotency, history marked as imported and never as an
approval, version numbering, dry run, refusals and failures."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.models import AuditEvent
from governance import compliance
from governance.models import StageHistory
from registry import services
from registry.models import ModelVersion, RegisteredModel
from tests.factories import actor_for, gate, make_model, make_version

mlflow = pytest.importorskip(
    "mlflow",
    reason="needs the full mlflow package (the dev extra pins mlflow==3.17.2) to start a "
    "real `mlflow server`",
)

pytestmark = [
    pytest.mark.django_db,
    # Stages are deprecated in MLflow, and still what registries hold: the test sets them.
    pytest.mark.filterwarnings("ignore:.*transition_model_version_stage:FutureWarning"),
]

# The registry the MLflow server holds (see the `mlflow_server` fixture), model by model:
# version number → (stage, tags); versions missing from a range were deleted in MLflow.
FRAUD = "fraud-detector"
CHURN = "churn"
# Five models and three versions of one, read two per page: paging is exercised.
MODELS = [FRAUD, CHURN, "empty", "pricing", "quote's"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"mlflow server did not become healthy: {log.read_text()[-2000:]}")


def _populate(client: Any) -> None:
    client.create_registered_model(
        FRAUD, tags={"team": "risk", "domain": "payments"}, description="Flags fraud."
    )
    for n in range(1, 5):
        client.create_model_version(
            FRAUD,
            f"s3://models/fraud/{n}",
            run_id=f"run-fraud-{n}",
            run_link=f"https://ci.example/runs/{n}",
            tags={"n": str(n), "framework": "sklearn"},
            description=f"Fraud v{n}",
        )
    client.delete_model_version(FRAUD, "2")  # a gap: MLflow never reuses 2
    client.transition_model_version_stage(FRAUD, "1", "Production")
    client.transition_model_version_stage(FRAUD, "3", "Production", archive_existing_versions=True)
    client.transition_model_version_stage(FRAUD, "4", "Staging")
    client.set_registered_model_alias(FRAUD, "champion", "3")
    client.set_registered_model_alias(FRAUD, "challenger", "4")

    client.create_registered_model(CHURN, description="Predicts churn.")
    for n in range(1, 4):
        client.create_model_version(CHURN, f"s3://models/churn/{n}", run_id=f"run-churn-{n}")
    client.set_registered_model_alias(CHURN, "candidate", "2")

    client.create_registered_model("empty", description="No versions yet.")
    client.create_registered_model("pricing")
    client.create_model_version("pricing", "gs://models/pricing/1")
    client.create_registered_model("quote's", tags={"family": "quoting"})
    client.create_model_version("quote's", "s3://models/quote/1", run_id="run-quote")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server on SQLite in a temporary folder, populated once for the module
    (tests import from it; only the one that changes MLflow uses a model of its own)."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "server"),
                *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
                *("--default-artifact-root", str(root / "artifacts")),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            ],
            cwd=root,
            # The registry needs no job runner (a dozen worker processes otherwise).
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole at teardown
        )
    saved = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        _wait_healthy(url, process, log)
        _populate(mlflow.MlflowClient(tracking_uri=url, registry_uri=url))
        yield url
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = saved
        # Nothing to keep: a short grace period, then the whole group goes.
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=3)
        with contextlib.suppress(ProcessLookupError):  # all gone already
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


def run(url: str, *args: str, user: str = "root") -> str:
    out = StringIO()
    call_command(
        "import_mlflow", "--from", url, "--as", user, "--page-size", "2", *args, stdout=out
    )
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "events": AuditEvent.objects.count(),
        "models": RegisteredModel.objects.count(),
        "versions": ModelVersion.objects.count(),
        "history": StageHistory.objects.count(),
    }


def version(name: str, number: int) -> ModelVersion:
    return ModelVersion.objects.get(registered_model__name=name, version=number)


def test_import_copies_models_versions_tags_aliases_stages_and_sources(mlflow_server, root):
    out = run(mlflow_server)

    assert f"{FRAUD}: created — versions 3 created, 0 updated; tags 8; aliases 2; stages 3" in out
    assert "empty: created — versions 0 created" in out
    assert "quote's: created — versions 1 created" in out
    assert "5 models: 5 created, 0 updated, 0 unchanged, 0 refused, 0 failed." in out
    assert set(RegisteredModel.objects.values_list("name", flat=True)) == set(MODELS)

    fraud = RegisteredModel.objects.get(name=FRAUD)
    assert fraud.description == "Flags fraud."
    assert dict(fraud.tags.values_list("key", "value")) == {"team": "risk", "domain": "payments"}
    assert sorted(fraud.versions.values_list("version", flat=True)) == [1, 3, 4]
    assert fraud.last_version_number == 4
    v3 = version(FRAUD, 3)
    assert (v3.source, v3.run_id, v3.run_link, v3.description, v3.status) == (
        "s3://models/fraud/3",
        "run-fraud-3",
        "https://ci.example/runs/3",
        "Fraud v3",
        "ready",
    )
    assert dict(v3.tags.values_list("key", "value")) == {"n": "3", "framework": "sklearn"}
    assert {n: version(FRAUD, n).stage for n in (1, 3, 4)} == {
        1: "archived",
        3: "production",
        4: "staging",
    }
    assert dict(fraud.aliases.values_list("name", "version__version")) == {
        "champion": 3,
        "challenger": 4,
    }
    assert version("pricing", 1).source == "gs://models/pricing/1"
    churn = RegisteredModel.objects.get(name=CHURN)
    assert dict(churn.aliases.values_list("name", "version__version")) == {"candidate": 2}

    # Audited with the importing superuser: the services' events and one summary per model.
    summary = AuditEvent.objects.get(action="mlflow.imported", registered_model_name=FRAUD)
    assert summary.actor == root and summary.channel == "cli"
    assert summary.details["source"] == mlflow_server
    assert summary.details["versions_created"] == 3 and summary.details["stages"] == 3
    fraud_events = AuditEvent.objects.filter(registered_model_name=FRAUD)
    assert set(fraud_events.values_list("actor__username", flat=True)) == {"root"}
    actions = list(fraud_events.values_list("action", flat=True))
    assert actions.count("version.created") == 3
    assert actions.count("version.stage_changed") == 3
    assert actions.count("alias.created") == 2
    assert AuditEvent.objects.filter(action="mlflow.imported").count() == len(MODELS)


def test_a_second_run_changes_nothing_and_says_unchanged(mlflow_server, root):
    run(mlflow_server)
    before = counts()

    out = run(mlflow_server)

    assert counts() == before  # no version, audit event or history row
    for name in MODELS:
        assert f"{name}: unchanged" in out
    assert "0 created, 0 updated, 5 unchanged, 0 refused, 0 failed." in out


def test_imported_stages_and_aliases_are_history_marked_imported_never_approvals(
    mlflow_server, root, api, client
):
    run(mlflow_server)

    rows = StageHistory.objects.filter(registered_model__name=FRAUD)
    assert rows.count() == 5  # three stages, two aliases
    assert set(rows.values_list("origin", flat=True)) == {StageHistory.Origin.MLFLOW_IMPORT}
    assert not rows.filter(promotion_request__isnull=False).exists()

    answer = api(root).get(reverse("governance-api:model-history", args=[FRAUD]))
    assert answer.status_code == 200
    timeline = answer.json()["timeline"]
    assert {(p["kind"], p["name"], p["version"]) for p in timeline} == {
        ("stage", "production", 3),
        ("stage", "archived", 1),
        ("stage", "staging", 4),
        ("alias", "champion", 3),
        ("alias", "challenger", 4),
    }
    assert all(p["origin"] == "mlflow_import" and p["approved_by"] == [] for p in timeline)

    report = compliance.report(RegisteredModel.objects.get(name=FRAUD))
    [placed] = report["production_history"]
    assert placed["origin"] == "mlflow_import" and placed["approved_by"] == []
    assert placed["finding"] == "imported from MLflow, not approved in Modelgate"
    assert any("no approval in Modelgate" in f["message"] for f in report["findings"])
    assert report["reviews"] == []

    client.force_login(root)
    page = client.get(reverse("registry:model-detail", args=[FRAUD]))
    assert page.status_code == 200
    assert "imported from MLflow" in page.content.decode()


def test_the_next_version_follows_the_highest_imported_number(mlflow_server, root):
    run(mlflow_server)
    fraud = RegisteredModel.objects.get(name=FRAUD)

    created = make_version(root, fraud, source="s3://models/fraud/new")

    assert created.version == 5  # never 2 (deleted in MLflow) nor a number MLflow used


def test_dry_run_reports_what_it_would_do_and_changes_nothing(mlflow_server, root):
    before = counts()

    out = run(mlflow_server, "--dry-run")

    assert counts() == before
    assert "dry run" in out
    assert f"{FRAUD}: created — versions 3 created" in out
    assert "Dry run, every change rolled back: 5 models: 5 created" in out


@pytest.mark.parametrize("who", ["alice", "root-inactive", "nobody"])
def test_only_an_active_superuser_may_import(mlflow_server, root, who):
    User.objects.create_user("alice", "alice@example.com", "pw", is_staff=True)
    User.objects.create_superuser("root-inactive", "x@example.com", "pw", is_active=False)
    before = counts()

    with pytest.raises(CommandError, match="only an active superuser may run it"):
        run(mlflow_server, user=who)

    assert counts() == before


def test_an_unreachable_server_is_a_clear_command_error(root):
    with pytest.raises(CommandError, match=r"Cannot reach MLflow at http://127\.0\.0\.1:\d+"):
        run(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(CommandError, match="must be an http:// or https:// URI"):
        run("sqlite:///mlflow.db")
    with pytest.raises(CommandError, match="not inside the URI"):
        run("http://user:secret@127.0.0.1:5000")


def test_a_model_with_versions_of_its_own_is_refused_and_the_rest_imported(mlflow_server, root):
    churn = make_model(root, CHURN)
    make_version(root, churn, source="s3://elsewhere/1")

    out = StringIO()
    with pytest.raises(CommandError, match=r"1 model\(s\) not imported: churn\."):
        call_command("import_mlflow", "--from", mlflow_server, "--as", "root", stdout=out)

    text = out.getvalue()
    assert "churn: refused — Modelgate's model 'churn' has versions that were not imported" in text
    assert "(v1)" in text
    assert f"{FRAUD}: created" in text
    assert list(churn.versions.values_list("source", flat=True)) == ["s3://elsewhere/1"]
    assert not churn.aliases.exists()
    assert RegisteredModel.objects.filter(name=FRAUD).exists()


def test_a_stage_changed_in_modelgate_after_the_import_is_kept(mlflow_server, root):
    run(mlflow_server)
    services.version_stage_set(
        actor=actor_for(root), version=version(FRAUD, 4), stage=ModelVersion.Stage.ARCHIVED
    )
    before = counts()

    out = run(mlflow_server)

    assert counts() == before
    assert "kept Modelgate's stage archived (MLflow: staging)" in out
    assert version(FRAUD, 4).stage == "archived"


def test_changes_in_mlflow_are_brought_over_by_the_next_run(mlflow_server, root):
    client = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    name = "moving"
    client.create_registered_model(name)
    try:
        for n in (1, 2):
            client.create_model_version(name, f"s3://models/moving/{n}", run_id=f"r{n}")
        client.transition_model_version_stage(name, "1", "Production")
        client.set_registered_model_alias(name, "champion", "1")
        run(mlflow_server)
        gate(RegisteredModel.objects.get(name=name))

        client.update_registered_model(name, description="Now described.")
        client.set_model_version_tag(name, "1", "checked", "yes")
        client.transition_model_version_stage(name, "1", "Archived")
        client.transition_model_version_stage(name, "2", "Production")
        client.set_registered_model_alias(name, "champion", "2")
        client.create_model_version(name, "s3://models/moving/3", run_id="r3")
        out = run(mlflow_server)
    finally:
        client.delete_registered_model(name)

    assert (
        f"{name}: updated — versions 1 created, 0 updated; tags 1; aliases 0; stages 1; "
        "description updated" in out
    ), out
    # The first import recorded MLflow's registry as found; since then the model is governed
    # here: taking v1 out of service follows MLflow, putting v2 into production (or moving
    # the protected champion alias) waits for a promotion request, as the report says.
    assert "version 2: not moved to production (MLflow has it there)" in out
    assert "alias champion: not pointed at v2 (MLflow has it there)" in out
    moving = RegisteredModel.objects.get(name=name)
    assert moving.description == "Now described."
    assert {v.version: v.stage for v in moving.versions.all()} == {
        1: "archived",
        2: "none",
        3: "none",
    }
    assert moving.aliases.get(name="champion").version.version == 1
    assert set(
        StageHistory.objects.filter(registered_model=moving).values_list("origin", flat=True)
    ) == {StageHistory.Origin.MLFLOW_IMPORT}
    assert (
        AuditEvent.objects.filter(action="mlflow.imported", registered_model_name=name).count() == 2
    )


def test_a_model_that_cannot_be_copied_fails_alone_and_the_run_exits_non_zero(mlflow_server, root):
    client = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    name = "padded "  # MLflow takes a trailing blank; Modelgate's names may not end in one
    client.create_registered_model(name)
    try:
        client.create_model_version(name, "s3://models/padded/1")
        out = StringIO()
        with pytest.raises(CommandError, match=r"1 model\(s\) not imported: padded \."):
            call_command("import_mlflow", "--from", mlflow_server, "--as", "root", stdout=out)
    finally:
        client.delete_registered_model(name)

    assert f"{name}: failed — Name may not start or end with white space." in out.getvalue()
    assert not RegisteredModel.objects.filter(name=name).exists()  # rolled back whole
    assert not AuditEvent.objects.filter(registered_model_name=name).exists()
    assert set(RegisteredModel.objects.values_list("name", flat=True)) == set(MODELS)


class _Refusing(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        type(self).seen.append(self.headers.get("Authorization"))
        body = json.dumps({"error_code": "UNAUTHENTICATED", "message": "bad token"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """An MLflow stand-in that refuses every request and remembers the credentials sent."""
    _Refusing.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_are_sent_as_mlflow_sends_them_and_a_refusal_is_clear(
    refusing_server, root, monkeypatch
):
    with pytest.raises(CommandError, match=r"refused the credentials \(401 UNAUTHENTICATED"):
        run(refusing_server, "--token", "tok-123")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    with pytest.raises(CommandError, match="refused the credentials"):
        run(refusing_server)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(CommandError, match="needs both a username and a password"):
        run(refusing_server)

    assert _Refusing.seen == ["Bearer tok-123", "Basic YW5uOnB3"]  # base64("ann:pw")
    assert not RegisteredModel.objects.exists()
