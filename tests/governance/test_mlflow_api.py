"""The unmodified MLflow client (mlflow 3.17.2, pinned in pyproject) against Modelgate's
/api/2.0/mlflow/ over a live server: every registry operation, paging, the error cases of
../shared/mlflow-registry-api.md, governance behind the API and HTTP basic throttling."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from core.actors import Actor
from core.models import AuditEvent
from core.tokens import token_create
from governance.models import PromotionRequest
from registry.models import ModelVersion, RegisteredModel
from tests.factories import gate, make_model, make_version, no_approval, place

mlflow = pytest.importorskip("mlflow", reason="the MLflow client is a dev dependency")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.utils.request_utils import _cached_get_request_session  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def _token(user: User) -> str:
    return token_create(actor=Actor.system("cli", user=user), user=user, name="mlflow")[1]


@pytest.fixture
def as_user(live_server: Any, monkeypatch: pytest.MonkeyPatch):
    """A client that authenticates as `user` with an API token (MLFLOW_TRACKING_TOKEN)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)

    def client(user: User) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", _token(user))
        return MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url)

    try:
        yield client
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        # The client keeps connections alive in cached sessions: drop them, so the live
        # server's threads end and close their database connections before teardown.
        _cached_get_request_session.cache_clear()


def _raw(live_server: Any, method: str, path: str, body: Any = None, auth: str = "") -> tuple:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        live_server.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **({"Authorization": auth} if auth else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _code(call: Any) -> str:
    with pytest.raises(MlflowException) as caught:
        call()
    return caught.value.error_code


def test_register_version_tag_alias_search_page_and_delete(as_user, data_scientist):
    client = as_user(data_scientist)
    model = client.create_registered_model(
        "fraud-detector", tags={"team": "risk"}, description="Flags card fraud."
    )
    assert (model.name, model.tags, model.description) == (
        "fraud-detector",
        {"team": "risk"},
        "Flags card fraud.",
    )
    versions = [
        client.create_model_version("fraud-detector", f"s3://bucket/run{i}/model", run_id=f"r{i}")
        for i in range(1, 4)
    ]
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert versions[0].status == "READY" and versions[0].current_stage == "None"
    assert versions[0].source == "s3://bucket/run1/model" and versions[0].run_id == "r1"

    client.set_registered_model_tag("fraud-detector", "owner", "ana")
    client.delete_registered_model_tag("fraud-detector", "team")
    client.delete_registered_model_tag("fraud-detector", "never-set")  # silently fine
    client.set_model_version_tag("fraud-detector", "2", "validated", "yes")
    client.delete_model_version_tag("fraud-detector", "2", "validated")
    client.set_model_version_tag("fraud-detector", "3", "validated", True)  # str() by client
    client.set_registered_model_alias("fraud-detector", "candidate", "2")
    client.set_registered_model_alias("fraud-detector", "candidate", "3")  # moves
    client.update_registered_model("fraud-detector", description="v2 of the description")
    client.update_model_version("fraud-detector", "1", description="baseline")

    model = client.get_registered_model("fraud-detector")
    assert model.tags == {"owner": "ana"}
    assert model.aliases == {"candidate": "3"}
    assert model.description == "v2 of the description"
    assert [v.version for v in model.latest_versions] == ["3"]  # newest of stage None
    v3 = client.get_model_version_by_alias("fraud-detector", "candidate")
    assert (v3.version, v3.aliases, v3.tags) == ("3", ["candidate"], {"validated": "True"})
    assert client.get_model_version("fraud-detector", "1").description == "baseline"
    assert client.get_model_version_by_alias("fraud-detector", "latest").version == "3"

    client.delete_registered_model_alias("fraud-detector", "candidate")
    client.delete_registered_model_alias("fraud-detector", "candidate")  # silently fine
    client.delete_model_version("fraud-detector", "3")
    assert client.create_model_version("fraud-detector", "s3://b/4").version == "4"  # no reuse
    assert [v.version for v in client.search_model_versions("name='fraud-detector'")] == [
        "4",
        "2",
        "1",
    ]

    client.rename_registered_model("fraud-detector", "fraud-scorer")
    assert _code(lambda: client.get_registered_model("fraud-detector")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert client.get_model_version("fraud-scorer", "4").name == "fraud-scorer"
    client.delete_registered_model("fraud-scorer")
    assert _code(lambda: client.get_registered_model("fraud-scorer")) == "RESOURCE_DOES_NOT_EXIST"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "registered_model.created",
        "version.created",
        "alias.moved",
        "alias.deleted",
        "version.deleted",
        "registered_model.deleted",
    } <= actions
    assert not AuditEvent.objects.filter(actor_label="", action="version.created").exists()


def test_mlflow_register_model_carries_on_when_the_model_exists(as_user, data_scientist, settings):
    client = as_user(data_scientist)
    client.create_registered_model("churn")
    mlflow.set_tracking_uri(client._registry_uri)
    mlflow.set_registry_uri(client._registry_uri)
    version = mlflow.register_model("s3://bucket/churn/model", "churn", tags={"k": "v"})
    assert (version.version, version.tags) == ("1", {"k": "v"})
    assert _code(lambda: client.create_registered_model("churn")) == "RESOURCE_ALREADY_EXISTS"


def test_search_filters_ordering_and_paging(as_user, data_scientist):
    client = as_user(data_scientist)
    for name in ["alpha-1", "alpha-2", "alpha-3", "beta-1", "Alpha-4"]:
        client.create_registered_model(name, tags={"family": name.split("-")[0].lower()})
    # The client refuses to create prompts; one registered elsewhere is hidden from searches.
    make_model(data_scientist, "prompt-like", tags={"mlflow.prompt.is_prompt": "true"})
    names = [m.name for m in client.search_registered_models()]
    assert names == ["Alpha-4", "alpha-1", "alpha-2", "alpha-3", "beta-1"]  # prompts hidden
    assert [m.name for m in client.search_registered_models("name LIKE 'alpha%'")] == [
        "alpha-1",
        "alpha-2",
        "alpha-3",
    ]
    assert len(client.search_registered_models("name ILIKE 'alpha%'")) == 4
    assert [m.name for m in client.search_registered_models("tag.family = 'beta'")] == ["beta-1"]
    assert [m.name for m in client.search_registered_models("name IN ('beta-1', 'alpha-2')")] == [
        "alpha-2",
        "beta-1",
    ]
    assert [
        m.name
        for m in client.search_registered_models("name LIKE 'alpha%'", order_by=["name DESC"])
    ] == ["alpha-3", "alpha-2", "alpha-1"]
    client.update_registered_model("alpha-2", description="touched")  # the newest update
    newest = client.search_registered_models(order_by=["last_updated_timestamp DESC"])
    assert newest[0].name == "alpha-2"
    assert [m.name for m in client.search_registered_models("tag.family != 'alpha'")] == ["beta-1"]

    page1 = client.search_registered_models(max_results=2)
    assert [m.name for m in page1] == ["Alpha-4", "alpha-1"] and page1.token
    page2 = client.search_registered_models(max_results=2, page_token=page1.token)
    page3 = client.search_registered_models(max_results=2, page_token=page2.token)
    assert [m.name for m in page2] == ["alpha-2", "alpha-3"]
    assert [m.name for m in page3] == ["beta-1"] and not page3.token
    # The fluent API follows the tokens itself.
    mlflow.set_registry_uri(client._registry_uri)
    assert len(mlflow.search_registered_models(max_results=3)) == 3
    assert len(mlflow.search_registered_models()) == 5

    for i in range(5):
        client.create_model_version("alpha-1", f"s3://b/{i}", run_id="run-a" if i < 2 else "run-b")
    assert [
        v.version for v in client.search_model_versions("name='alpha-1' AND run_id='run-a'")
    ] == ["2", "1"]
    assert [
        v.version
        for v in client.search_model_versions(
            "name = 'alpha-1' AND version_number >= 3", order_by=["version_number ASC"]
        )
    ] == ["3", "4", "5"]
    first = client.search_model_versions("name='alpha-1'", max_results=3)
    second = client.search_model_versions("name='alpha-1'", max_results=3, page_token=first.token)
    assert [v.version for v in [*first, *second]] == ["5", "4", "3", "2", "1"]
    assert not second.token
    assert [v.version for v in client.search_model_versions("source_path LIKE '%/4'")] == ["5"]


@pytest.mark.parametrize(
    "call, code",
    [
        (
            lambda c: c.search_registered_models("name = 'a' OR name = 'b'"),
            "INVALID_PARAMETER_VALUE",
        ),
        (lambda c: c.search_registered_models("creator = 'x'"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.search_registered_models(order_by=["owner"]), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.search_registered_models(max_results=1001), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.search_registered_models(page_token="not-a-token"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.search_model_versions(max_results=200_001), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.search_model_versions("version_number = 'x'"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.get_registered_model("missing"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c: c.get_model_version("m", "9"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c: c.get_model_version("m", "one"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.create_model_version("missing", "s3://x"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c: c.create_model_version("m", "s3://x/../y"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.create_registered_model("m"), "RESOURCE_ALREADY_EXISTS"),
        (lambda c: c.create_registered_model("a:b"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.rename_registered_model("m", "other"), "RESOURCE_ALREADY_EXISTS"),
        (lambda c: c.set_registered_model_alias("m", "latest", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.set_registered_model_alias("m", "v2", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.set_registered_model_alias("m", "champ", "7"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c: c.get_model_version_by_alias("m", "nobody"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.transition_model_version_stage("m", "1", "Live"), "INVALID_PARAMETER_VALUE"),
        (
            lambda c: c.transition_model_version_stage("m", "1", "Archived", True),
            "INVALID_PARAMETER_VALUE",
        ),
        (lambda c: c.get_latest_versions("m", ["Live"]), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.create_registered_model("a/b"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.set_registered_model_alias("m", "not ok!", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.set_registered_model_alias("m", "a" * 256, "1"), "INVALID_PARAMETER_VALUE"),
        (
            lambda c: c.search_registered_models("creation_timestamp > 0"),
            "INVALID_PARAMETER_VALUE",
        ),
        (lambda c: c.search_registered_models("name = 'unterminated"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.search_model_versions("tag.k NOT LIKE 'x'"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.create_model_version("m", "s3://x/\x00"), "BAD_REQUEST"),
        (lambda c: c.update_model_version("m", "0", "d"), "INVALID_PARAMETER_VALUE"),
        (lambda c: c.delete_model_version_tag("missing", "1", "k"), "RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_errors_carry_mlflows_codes_and_change_nothing(as_user, data_scientist, call, code):
    client = as_user(data_scientist)
    client.create_registered_model("m")
    client.create_registered_model("other")
    client.create_model_version("m", "s3://x/1")
    events = AuditEvent.objects.count()
    assert _code(lambda: call(client)) == code
    assert (
        AuditEvent.objects.filter(action__startswith="registered_model").count()
        + (AuditEvent.objects.filter(action__startswith="version").count())
        == 3
        and AuditEvent.objects.count() <= events + 1
    )  # at most a refusal is recorded
    assert list(RegisteredModel.objects.order_by("name").values_list("name", flat=True)) == [
        "m",
        "other",
    ]


def test_raw_protocol_shapes(live_server, data_scientist):
    token = _token(data_scientist)
    auth = f"Bearer {token}"
    status, body = _raw(
        live_server, "POST", "/api/2.0/mlflow/registered-models/create", {"name": "raw"}, auth
    )
    assert status == 200 and body["registered_model"]["name"] == "raw"
    status, body = _raw(
        live_server,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        {"name": "raw", "source": "s3://r", "tags": [{"key": "a", "value": "b"}]},
        auth,
    )
    assert status == 200
    version = body["model_version"]
    assert version["version"] == "1" and isinstance(version["version"], str)
    assert version["tags"] == [{"key": "a", "value": "b"}]
    assert isinstance(version["creation_timestamp"], int)
    # Empty answers are a JSON object, never a 204; DELETE reads its JSON body.
    status, body = _raw(
        live_server,
        "DELETE",
        "/api/2.0/mlflow/registered-models/delete-tag",
        {"name": "raw", "key": "none"},
        auth,
    )
    assert (status, body) == (200, {})
    status, body = _raw(live_server, "GET", "/api/2.0/mlflow/no-such-rpc", None, auth)
    assert status == 404 and body["error_code"] == "ENDPOINT_NOT_FOUND"
    status, body = _raw(
        live_server, "GET", "/api/2.0/mlflow/registered-models/get?name=raw", None, ""
    )
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
    status, body = _raw(
        live_server, "GET", "/api/2.0/mlflow/registered-models/get?name=raw", None, "Bearer mg_x"
    )
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
    status, body = _raw(live_server, "POST", "/api/2.0/mlflow/registered-models/create", [], auth)
    assert status == 400 and body["error_code"] == "BAD_REQUEST"
    # Both get-latest-versions methods.
    for method, path, payload in (
        ("POST", "/api/2.0/mlflow/registered-models/get-latest-versions", {"name": "raw"}),
        ("GET", "/api/2.0/mlflow/registered-models/get-latest-versions?name=raw", None),
    ):
        status, body = _raw(live_server, method, path, payload, auth)
        assert status == 200 and [v["version"] for v in body["model_versions"]] == ["1"]


def test_invisible_models_are_404_and_missing_permission_403(
    as_user, data_scientist, viewer, outsider
):
    make_model(data_scientist, "secret")
    assert _code(lambda: as_user(outsider).get_registered_model("secret")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert _code(lambda: as_user(outsider).create_model_version("secret", "s3://x")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert "secret" not in [m.name for m in as_user(outsider).search_registered_models()]
    assert as_user(outsider).search_model_versions("name='secret'") == []
    assert _code(lambda: as_user(viewer).create_model_version("secret", "s3://x")) == (
        "PERMISSION_DENIED"
    )
    assert not ModelVersion.objects.exists()
    assert AuditEvent.objects.filter(action="access.refused").count() >= 2


def test_basic_auth_signs_in_and_is_throttled_like_the_login_page(
    live_server, as_user, data_scientist, monkeypatch
):
    data_scientist.set_password("correct horse")
    data_scientist.save()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", data_scientist.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "correct horse")
    client = MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url)
    client.create_registered_model("by-basic")
    assert AuditEvent.objects.get(action="registered_model.created").actor_label == (
        data_scientist.username
    )

    def basic(password: str) -> str:
        pair = f"{data_scientist.username}:{password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    path = "/api/2.0/mlflow/registered-models/get?name=by-basic"
    with override_settings(AXES_FAILURE_LIMIT=3):
        for _ in range(3):
            status, body = _raw(live_server, "GET", path, None, basic("wrong"))
            assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")
        # Locked: even the right password is refused, without a 429 (which the client would
        # retry for minutes), and the message says why.
        status, body = _raw(live_server, "GET", path, None, basic("correct horse"))
        assert status == 401 and "locked" in body["message"]
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 3
    assert AuditEvent.objects.filter(action="auth.locked_out").count() == 1
    assert AuditEvent.objects.filter(action="auth.login_refused").count() == 1


def test_a_gated_transition_opens_one_request_and_answers_permission_denied(
    as_user, ml_engineer, data_scientist
):
    registered_model = make_model(ml_engineer, "gated")
    gate(registered_model)
    version = make_version(ml_engineer, registered_model)
    client = as_user(ml_engineer)
    with pytest.raises(MlflowException) as caught:
        client.transition_model_version_stage("gated", "1", "Production")
    assert caught.value.error_code == "PERMISSION_DENIED"
    promotion_request = PromotionRequest.objects.get()
    assert (promotion_request.version_id, promotion_request.target_stage) == (
        version.pk,
        "production",
    )
    assert f"#{promotion_request.pk}" in caught.value.message
    assert f"/requests/{promotion_request.pk}/" in caught.value.message
    # The same move again finds the open request instead of opening a second.
    with pytest.raises(MlflowException) as again:
        client.transition_model_version_stage("gated", "1", "production")
    assert f"#{promotion_request.pk}" in again.value.message
    assert PromotionRequest.objects.count() == 1
    version.refresh_from_db()
    assert version.stage == "none"

    # A protected alias likewise.
    with pytest.raises(MlflowException) as alias:
        client.set_registered_model_alias("gated", "champion", "1")
    assert alias.value.error_code == "PERMISSION_DENIED"
    assert PromotionRequest.objects.filter(target_alias="champion").count() == 1
    assert not registered_model.aliases.exists()


def test_ungated_transitions_move_archive_and_resolve_by_stage(as_user, ml_engineer):
    registered_model = make_model(ml_engineer, "free")
    no_approval(registered_model)
    client = as_user(ml_engineer)
    for i in range(3):
        client.create_model_version("free", f"s3://b/{i}")
    client.transition_model_version_stage("free", "1", "Production")
    moved = client.transition_model_version_stage("free", "2", "production", True)
    assert moved.current_stage == "Production"
    assert client.get_model_version("free", "1").current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions("free", ["Production"])] == ["2"]
    assert {(v.current_stage, v.version) for v in client.get_latest_versions("free")} == {
        ("Production", "2"),
        ("Archived", "1"),
        ("None", "3"),
    }
    model = client.get_registered_model("free")
    assert {v.current_stage for v in model.latest_versions} == {"Production", "Archived", "None"}


def test_serving_versions_refuse_deletion_with_invalid_state(as_user, ml_engineer):
    registered_model = make_model(ml_engineer, "serving")
    place(make_version(ml_engineer, registered_model), "production")
    client = as_user(ml_engineer)
    assert _code(lambda: client.delete_model_version("serving", "1")) == "INVALID_STATE"
    assert _code(lambda: client.delete_registered_model("serving")) == "INVALID_STATE"
    assert ModelVersion.objects.get().deleted_at is None


def test_tag_values_up_to_mlflows_limit(as_user, data_scientist):
    client = as_user(data_scientist)
    client.create_registered_model("long-tags")
    client.create_model_version("long-tags", "s3://b/1")
    client.set_registered_model_tag("long-tags", "notes", "x" * 100_000)
    client.set_model_version_tag("long-tags", "1", "notes", "y" * 100_000)
    assert len(client.get_registered_model("long-tags").tags["notes"]) == 100_000
    assert len(client.get_model_version("long-tags", "1").tags["notes"]) == 100_000
    code = _code(lambda: client.set_registered_model_tag("long-tags", "notes", "z" * 100_001))
    assert code == "INVALID_PARAMETER_VALUE"
    assert client.get_registered_model("long-tags").tags["notes"] == "x" * 100_000


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow/registered-models/search?max_results=1000",
        "/api/2.0/mlflow/model-versions/search?filter=name+LIKE+%27q%25%27",
        "/api/2.0/mlflow/registered-models/get?name=q0",
        "/api/2.0/mlflow/registered-models/get-latest-versions?name=q0",
    ],
)
def test_reads_take_the_same_queries_however_many_rows(
    api, data_scientist, django_assert_max_num_queries, path
):
    """No query per model or version: a page of 3 and a page of 30 cost the same."""
    client = api(data_scientist)

    def seed(start: int, stop: int) -> None:
        for i in range(start, stop):
            registered_model = make_model(data_scientist, f"q{i}", tags={"t": "x"})
            for _ in range(2):
                version = make_version(data_scientist, registered_model)
            place(version, "staging")

    seed(0, 3)
    with CaptureQueriesContext(connection) as small:
        assert client.get(path).status_code == 200
    seed(3, 30)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(path)
    assert response.status_code == 200
