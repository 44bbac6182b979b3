"""Adversarial tests of the MLflow-compatible API (governance/mlflow_api) and of
`manage.py import_mlflow`: other roads to staging, production and protected aliases, leaks
about models the caller may not see, odd input that must be a 4xx (never a 5xx, which the
MLflow client retries for minutes), authentication, and data the importer must not trust.

Every hole these found was closed in the same issue; the tests stay as regressions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.actors import Actor
from core.models import AuditEvent
from core.permissions import Perm
from core.tokens import token_create
from governance import access, mlflow_import, policies
from governance.models import PromotionRequest, StageHistory
from registry.models import Alias, ModelVersion, RegisteredModel
from tests.factories import (
    actor_for,
    gate,
    make_artifact,
    make_model,
    make_version,
    place,
    superuser,
)

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


# --- Helpers ---------------------------------------------------------------------------------


def _client(user: User | None = None, auth: str = "") -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {_token(user)}")
    elif auth:
        client.credentials(HTTP_AUTHORIZATION=auth)
    return client


def _token(user: User) -> str:
    return token_create(actor=Actor.system("cli", user=user), user=user, name="mlflow")[1]


def _call(client: APIClient, method: str, rpc: str, body: Any = None, **query: Any) -> tuple:
    """One RPC; the answer's status and JSON (never a 5xx here: the callers assert on it)."""
    url = rpc if rpc.startswith("/") else API + rpc
    if method == "GET":
        response = client.get(url, query)
    else:
        raw = body if isinstance(body, str | bytes) else json.dumps(body)
        response = getattr(client, method.lower())(url, data=raw, content_type="application/json")
    try:
        payload = response.json()
    except (ValueError, TypeError):
        payload = {}
    return response.status_code, payload


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def gated(ml_engineer: User) -> RegisteredModel:
    """'gov': v1 in production (placed as an approval would), v2 and v3 in stage None."""
    registered_model = make_model(ml_engineer, "gov")
    v1 = make_version(ml_engineer, registered_model, source="s3://approved/v1")
    make_version(ml_engineer, registered_model, source="s3://b/v2")
    make_version(ml_engineer, registered_model, source="s3://b/v3")
    place(v1, "production")
    gate(registered_model)
    return registered_model


def _stages(registered_model: RegisteredModel) -> dict[int, str]:
    return dict(registered_model.versions.values_list("version", "stage"))


# --- Roads to the protected states -----------------------------------------------------------


@pytest.mark.parametrize(
    "stage",
    [
        "Production",
        "PRODUCTION",
        "production",
        "pRoDuCtIoN",
        " Production",
        "Production ",
        "Production\n",
        "Production\t",
        "\u0130roduction",  # dotted capital I lowers to two code points
        "\uff30roduction",  # fullwidth P
        "Staging",
        "STAGING",
        "staging\r",
    ],
)
@pytest.mark.parametrize("archive", [False, True, "true", "True", 1])
def test_no_spelling_of_a_stage_moves_a_gated_version(gated, ml_engineer, stage, archive):
    before = _stages(gated)
    history = StageHistory.objects.count()
    status, body = _call(
        _client(ml_engineer),
        "POST",
        "model-versions/transition-stage",
        {"name": "gov", "version": "2", "stage": stage, "archive_existing_versions": archive},
    )
    assert status in (400, 403), body
    assert _stages(gated) == before  # v1 still serves, v2 not moved, nothing archived
    assert StageHistory.objects.count() == history
    if status == 403:
        assert body["error_code"] == "PERMISSION_DENIED"
        assert PromotionRequest.objects.filter(version__version=2).count() == 1


def test_archive_existing_on_the_serving_version_itself_archives_nothing(gated, ml_engineer):
    """Asking to move v1 (already in production) to production again, archiving the others,
    must not be a road to archive or re-place anything without approval."""
    before = _stages(gated)
    status, _ = _call(
        _client(ml_engineer),
        "POST",
        "model-versions/transition-stage",
        {"name": "gov", "version": "1", "stage": "Production", "archive_existing_versions": True},
    )
    assert status in (400, 403)
    assert _stages(gated) == before


def test_a_data_scientist_cannot_move_stages_or_open_requests_through_mlflow(gated, data_scientist):
    client = _client(data_scientist)
    status, body = _call(
        client,
        "POST",
        "model-versions/transition-stage",
        {"name": "gov", "version": "2", "stage": "Production"},
    )
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    status, body = _call(
        client,
        "POST",
        "registered-models/alias",
        {"name": "gov", "alias": "champion", "version": "2"},
    )
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    assert not PromotionRequest.objects.exists()
    assert not Alias.objects.exists()


@pytest.mark.parametrize(
    "alias",
    [
        "champion",
        "Champion",
        "CHAMPION",
        " champion",
        "champion ",
        "champion\t",
        "cham\u0440ion",  # Cyrillic er
        "\uff43hampion",  # fullwidth c
        "champ\u0131on",  # dotless i
        "champion\u200b",  # zero-width space
        "champion\n",
    ],
)
def test_no_spelling_of_a_protected_alias_moves_without_approval(gated, ml_engineer, alias):
    status, body = _call(
        _client(ml_engineer),
        "POST",
        "registered-models/alias",
        {"name": "gov", "alias": alias, "version": "2"},
    )
    assert status in (400, 403), body
    assert not Alias.objects.exists()


def test_a_protected_alias_spelled_differently_moves_the_same_alias_under_the_gate(
    gated, ml_engineer
):
    """Once `champion` exists (approved), other spellings address it and stay gated."""
    v1 = gated.versions.get(version=1)
    no = policies.policy_for(gated)
    policies.policy_override_set(
        actor=actor_for(superuser()), registered_model=gated, production_approvals=0
    )
    _call(
        _client(superuser()),
        "POST",
        "registered-models/alias",
        {"name": "gov", "alias": "champion", "version": "1"},
    )
    gate(gated)
    assert no is not None and Alias.objects.get().version_id == v1.pk
    for spelling in ("CHAMPION", "Champion"):
        status, _ = _call(
            _client(ml_engineer),
            "POST",
            "registered-models/alias",
            {"name": "gov", "alias": spelling, "version": "3"},
        )
        assert status == 403
    assert list(Alias.objects.values_list("name", "version_id")) == [("champion", v1.pk)]


def test_rename_delete_and_recreate_do_not_free_a_serving_name(gated, ml_engineer):
    client = _client(ml_engineer)
    status, body = _call(
        client, "POST", "registered-models/rename", {"name": "gov", "new_name": "gov-old"}
    )
    assert status in (400, 403), body
    status, body = _call(client, "DELETE", "registered-models/delete", {"name": "gov"})
    assert status == 400 and body["error_code"] == "INVALID_STATE"
    assert RegisteredModel.objects.get().name == "gov"
    # A deleted (not serving) model keeps its name: recreating it is refused.
    scratch = make_model(ml_engineer, "scratch")
    assert _call(client, "DELETE", "registered-models/delete", {"name": "scratch"})[0] == 200
    status, body = _call(client, "POST", "registered-models/create", {"name": "scratch"})
    assert (status, body["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    scratch.refresh_from_db()
    assert scratch.is_deleted


def test_a_version_number_spelled_oddly_is_refused(gated, ml_engineer):
    client = _client(ml_engineer)
    for raw in ("+2", "-1", "0", "2.0", "0x2", "\u0662", "\u00b2", "99999999999999999999", "1e0"):
        status, body = _call(
            client,
            "POST",
            "model-versions/transition-stage",
            {"name": "gov", "version": raw, "stage": "Production"},
        )
        assert status == 400, (raw, body)
    for raw in (2, 2.0, ["2"], {"v": 2}, None, True):
        status, _ = _call(
            client,
            "POST",
            "model-versions/transition-stage",
            {"name": "gov", "version": raw, "stage": "Production"},
        )
        assert status == 400, raw
    assert not PromotionRequest.objects.exists()


def _loads(client: APIClient, name: str, version: str) -> tuple[int, str]:
    """What `mlflow.pyfunc.load_model("models:/<name>/<version>")` ends up reading: the
    download URI, with a models:/ answer resolved again as MLflow's client does
    (ModelsArtifactRepository: @alias, /<stage>, /latest, /<n>), up to 5 hops. Returns the
    last status and the URI (or the error code)."""
    for _ in range(5):
        status, body = _call(
            client, "GET", "model-versions/get-download-uri", name=name, version=version
        )
        uri = body.get("artifact_uri", body.get("error_code", ""))
        if status != 200 or not uri.startswith("models:/"):
            return status, uri
        ref = uri[len("models:/") :]
        if "@" in ref and "/" not in ref:
            name, alias = ref.split("@", 1)
            status, body = _call(client, "GET", "registered-models/alias", name=name, alias=alias)
            version = body.get("model_version", {}).get("version", "")
        else:
            name, _, ref = ref.rpartition("/")
            if ref.isdigit():
                version = ref
            else:
                query: dict[str, Any] = {"name": name}
                if ref.lower() != "latest":
                    query["stages"] = ref
                status, body = _call(
                    client, "GET", "registered-models/get-latest-versions", **query
                )
                found = sorted(int(v["version"]) for v in body.get("model_versions", []))
                version = str(found[-1]) if found else ""
        if status != 200 or not version:
            return status, body.get("error_code", "not found")
    return 400, "chain"


def _create(client: APIClient, name: str, source: str) -> tuple[int, dict]:
    return _call(client, "POST", "model-versions/create", {"name": name, "source": source})


def test_a_production_version_cannot_serve_content_no_one_approved_via_an_alias_source(
    ml_engineer, data_scientist
):
    registered_model = make_model(ml_engineer, "gov")
    make_version(ml_engineer, registered_model, source="s3://approved/v1")
    policies.policy_override_set(
        actor=actor_for(superuser()), registered_model=registered_model, production_approvals=0
    )
    ds = _client(data_scientist)
    moved = _call(
        ds, "POST", "registered-models/alias", {"name": "gov", "alias": "candidate", "version": "1"}
    )
    assert moved[0] == 200
    assert _create(ds, "gov", "models:/gov@candidate")[0] == 200
    place(registered_model.versions.get(version=2), "production")  # as an approval would
    gate(registered_model)
    assert _loads(ds, "gov", "2") == (200, "s3://approved/v1")
    # No approval needed for either step: a new version and an unprotected alias.
    assert _create(ds, "gov", "s3://evil")[0] == 200
    moved = _call(
        ds, "POST", "registered-models/alias", {"name": "gov", "alias": "candidate", "version": "3"}
    )
    assert moved[0] == 200
    assert _loads(ds, "gov", "2") == (200, "s3://approved/v1")


def test_a_source_that_moves_by_itself_is_refused(ml_engineer, data_scientist):
    """models:/<name>/latest or /<stage> names whatever comes next: refused at creation, so no
    version approved into production can launder what is registered later."""
    scratch = make_model(data_scientist, "scratch")
    make_version(data_scientist, scratch, source="s3://reviewed/model")
    make_model(ml_engineer, "gov")
    for source in ("models:/scratch/latest", "models:/scratch/Production", "models:/scratch/None"):
        status, body = _create(_client(ml_engineer), "gov", source)
        assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), source
    assert not ModelVersion.objects.filter(registered_model__name="gov").exists()


def test_a_pinned_source_into_an_unsealed_version_does_not_change_a_production_download(
    ml_engineer, data_scientist
):
    scratch = make_model(data_scientist, "scratch")
    target = make_version(data_scientist, scratch, source="s3://reviewed/model")
    registered_model = make_model(ml_engineer, "gov")
    ds = _client(data_scientist)
    assert _create(_client(ml_engineer), "gov", "models:/scratch/1")[0] == 200
    place(registered_model.versions.get(), "production")
    gate(registered_model)
    before = _loads(ds, "gov", "1")
    assert before == (200, "s3://reviewed/model")
    make_artifact(data_scientist, target, data=b"\x00not a model" * 10, filename="weights.bin")
    assert _loads(ds, "gov", "1") == before


def test_a_source_naming_a_hidden_model_reveals_nothing(ml_engineer, outsider, data_scientist):
    """A user with change on one model only: a copy of a hidden version and a copy of a
    missing one answer alike, at creation and when loaded."""
    secret = make_model(data_scientist, "secret")
    make_version(data_scientist, secret, source="s3://secret")
    Alias.objects.create(
        registered_model=secret,
        name="champion",
        version=secret.versions.get(),
        created_at=secret.created_at,
        updated_at=secret.created_at,
    )
    mine = make_model(ml_engineer, "mine")
    for perm in (Perm.VIEW, Perm.CHANGE):
        access.grant_add(
            actor=actor_for(superuser()), registered_model=mine, perm=perm, user=outsider
        )
    client = _client(outsider)
    for form in ("models:/NAME/1", "models:/NAME@champion", "models:/NAME/latest"):
        answers = []
        for name in ("secret", "nosuch"):
            status, body = _create(client, "mine", form.replace("NAME", name))
            created = body.get("model_version", {}).get("version")
            loaded = _loads(client, "mine", created) if created else None
            text = json.dumps([status, body.get("error_code"), body.get("message"), loaded])
            answers.append(text.replace(name, "X"))
        assert answers[0] == answers[1], answers
        assert "s3://secret" not in answers[0]
    assert not mine.versions.filter(artifacts__isnull=False).exists()


# --- Leaks about models the caller may not see -----------------------------------------------


def _hidden_vs_missing(client: APIClient, method: str, rpc: str, fields: dict[str, str]) -> None:
    answers = []
    for name in ("secret", "no-such-model"):
        values = {k: v.replace("NAME", name) for k, v in fields.items()}
        if method == "GET":
            status, body = _call(client, method, rpc, **values)
        else:
            status, body = _call(client, method, rpc, values)
        answers.append((status, body.get("error_code"), json.dumps(body).replace(name, "X")))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == 404


@pytest.mark.parametrize(
    "method, rpc, fields",
    [
        ("GET", "registered-models/get", {"name": "NAME"}),
        ("GET", "registered-models/get-latest-versions", {"name": "NAME"}),
        ("POST", "registered-models/get-latest-versions", {"name": "NAME"}),
        ("GET", "registered-models/alias", {"name": "NAME", "alias": "champion"}),
        ("GET", "registered-models/alias", {"name": "NAME", "alias": "latest"}),
        ("POST", "registered-models/alias", {"name": "NAME", "alias": "x", "version": "1"}),
        ("DELETE", "registered-models/alias", {"name": "NAME", "alias": "champion"}),
        ("GET", "model-versions/get", {"name": "NAME", "version": "1"}),
        ("GET", "model-versions/get", {"name": "NAME", "version": "2"}),
        ("GET", "model-versions/get-download-uri", {"name": "NAME", "version": "1"}),
        ("POST", "model-versions/create", {"name": "NAME", "source": "s3://x"}),
        ("POST", "model-versions/set-tag", {"name": "NAME", "version": "1", "key": "k"}),
        ("DELETE", "model-versions/delete", {"name": "NAME", "version": "1"}),
        (
            "POST",
            "model-versions/transition-stage",
            {"name": "NAME", "version": "1", "stage": "Production"},
        ),
        ("POST", "registered-models/rename", {"name": "NAME", "new_name": "taken"}),
        ("PATCH", "registered-models/update", {"name": "NAME", "description": "d"}),
        ("DELETE", "registered-models/delete", {"name": "NAME"}),
        ("POST", "registered-models/set-tag", {"name": "NAME", "key": "k", "value": "v"}),
    ],
)
def test_hidden_and_missing_models_answer_alike(data_scientist, outsider, method, rpc, fields):
    secret = make_model(data_scientist, "secret")
    make_version(data_scientist, secret)
    place(make_version(data_scientist, secret), "production")
    Alias.objects.create(
        registered_model=secret,
        name="champion",
        version=secret.versions.get(version=1),
        created_at=secret.created_at,
        updated_at=secret.created_at,
    )
    _hidden_vs_missing(_client(outsider), method, rpc, fields)
    assert RegisteredModel.objects.get().name == "secret"
    assert _stages(secret) == {1: "none", 2: "production"}


def test_searches_reveal_neither_hidden_models_nor_their_count(ml_engineer, outsider):
    for i in range(6):
        registered_model = make_model(ml_engineer, f"hidden-{i}", tags={"team": "x"})
        make_version(ml_engineer, registered_model, source=f"s3://h/{i}", run_id="run-h")
    mine = make_model(ml_engineer, "a-visible")
    make_version(ml_engineer, mine, source="s3://v", run_id="run-v")
    access.grant_add(
        actor=actor_for(superuser()), registered_model=mine, perm=Perm.VIEW, user=outsider
    )
    client = _client(outsider)
    for rpc, key in (
        ("registered-models/search", "registered_models"),
        ("model-versions/search", "model_versions"),
    ):
        for query in (
            {"max_results": "1"},
            {"max_results": "1", "order_by": "name DESC"},
            {"max_results": "1", "filter": "name LIKE 'hidden%'"},
            {"max_results": "1", "filter": "tag.team = 'x'"},
            {"max_results": "1", "filter": "tag.team != 'y'"},
        ):
            status, body = _call(client, "GET", rpc, **query)
            assert status == 200, body
            names = [item["name"] for item in body.get(key, [])]
            assert all(n == "a-visible" for n in names), (rpc, query, names)
            assert "next_page_token" not in body, (rpc, query)
        # A page token past the visible rows does not land among hidden ones.
        token = base64.b64encode(json.dumps({"offset": 1}).encode()).decode()
        status, body = _call(client, "GET", rpc, page_token=token)
        assert status == 200 and not body.get(key), body
    for condition in ("run_id = 'run-h'", "source_path LIKE 's3://h/%'", "version_number > 0"):
        status, body = _call(client, "GET", "model-versions/search", filter=condition)
        assert [v["name"] for v in body.get("model_versions", [])] in ([], ["a-visible"])


# --- Odd input: a 4xx, never a 5xx ------------------------------------------------------------


def _token_for(offset: Any) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


@pytest.mark.parametrize("rpc", ["registered-models/search", "model-versions/search"])
@pytest.mark.parametrize(
    "token",
    [
        _token_for(-1),
        _token_for(1.5),
        _token_for(True),
        _token_for("5"),
        _token_for(None),
        base64.b64encode(b"[1]").decode(),
        base64.b64encode(b"\xff\xfe").decode(),
        "====",
        "e30",  # unpadded {}
        _token_for(10**30),
    ],
)
def test_page_tokens_that_are_not_ours_are_a_400(data_scientist, rpc, token):
    make_model(data_scientist, "m")
    status, body = _call(_client(data_scientist), "GET", rpc, page_token=token)
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body


@pytest.mark.parametrize("rpc", ["registered-models/search", "model-versions/search"])
def test_the_largest_offset_a_column_holds_is_an_empty_page(data_scientist, rpc):
    make_version(data_scientist, make_model(data_scientist, "m"))
    status, body = _call(
        _client(data_scientist), "GET", rpc, page_token=_token_for(2**63 - 1), max_results="1"
    )
    assert status in (200, 400), body
    assert not body.get("registered_models") and not body.get("model_versions")


@pytest.mark.parametrize("rpc", ["registered-models/search", "model-versions/search"])
@pytest.mark.parametrize(
    "value", ["0", "-1", "+5", "1e3", "5.0", "0x10", "\u0665", "", " ", "99999999999999999999999"]
)
def test_max_results_odd_values(data_scientist, rpc, value):
    status, body = _call(_client(data_scientist), "GET", rpc, max_results=value)
    assert status in (200, 400), body
    if value.strip() not in ("",):
        assert status == 400 or value.strip() == "", (value, body)


@pytest.mark.parametrize(
    "flt",
    [
        "(" * 3000 + "name = 'a'" + ")" * 3000,
        " AND ".join(["name = 'a'"] * 3000),
        "name IN (" + ",".join(["'a'"] * 5000) + ")",
        "name = '" + "a" * 100_000 + "'",
        "tag.`" + "k" * 1000 + "` = 'v'",
        "version_number = 99999999999999999999999",
        "version_number > -99999999999999999999999",
        "name LIKE '%\\'",
        "name = '\u202e\ufeff'",
        "tag.k = 1",
        "name = 'a' AND",
        "`name` = 'a'",
    ],
)
def test_filters_that_are_odd_never_answer_5xx(data_scientist, flt):
    make_version(data_scientist, make_model(data_scientist, "a"))
    for rpc in ("registered-models/search", "model-versions/search"):
        status, body = _call(_client(data_scientist), "GET", rpc, filter=flt)
        assert status in (200, 400), (rpc, flt[:60], status, body)


@pytest.mark.parametrize(
    "order_by", ["name;DROP", "name ASC DESC", "", "   ", "pk", "name\tDESC", "NAME desc"]
)
def test_odd_orderings_are_a_400_or_honoured(data_scientist, order_by):
    status, body = _call(
        _client(data_scientist), "GET", "registered-models/search", order_by=order_by
    )
    assert status in (200, 400), body


@pytest.mark.parametrize(
    "rpc, method, body",
    [
        ("registered-models/create", "POST", {"name": 5}),
        ("registered-models/create", "POST", {"name": ["a"]}),
        ("registered-models/create", "POST", {"name": {"a": 1}}),
        ("registered-models/create", "POST", {"name": "m", "description": ["d"]}),
        ("registered-models/create", "POST", {"name": "m", "tags": {"k": "v"}}),
        ("registered-models/create", "POST", {"name": "m", "tags": [{"key": "k", "value": {}}]}),
        ("registered-models/create", "POST", {"name": "m", "tags": [{"key": "", "value": "v"}]}),
        ("registered-models/create", "POST", {"name": "m", "tags": [{"value": "v"}]}),
        ("registered-models/create", "POST", {"name": "m", "tags": ["k"]}),
        ("registered-models/create", "POST", {"name": "a" * 10_000}),
        ("registered-models/create", "POST", {"name": " m"}),
        ("registered-models/create", "POST", {"name": "m\u202e"}),
        ("registered-models/create", "POST", {"name": "m\ud800"}),
        ("registered-models/create", "POST", {"name": "m", "description": "d\ud800"}),
        ("registered-models/create", "POST", [{"name": "m"}]),
        ("registered-models/create", "POST", "null"),
        ("registered-models/create", "POST", "{" * 100),
        ("registered-models/create", "POST", '{"name": "m\\u0000"}'),
        ("registered-models/create", "POST", "[" * 5000 + "]" * 5000),
        ("registered-models/create", "POST", '{"name": 1e999}'),
        ("registered-models/create", "POST", '{"name": NaN}'),
        ("registered-models/set-tag", "POST", {"name": "m0", "key": "k" * 10_000, "value": "v"}),
        ("registered-models/set-tag", "POST", {"name": "m0", "key": "k\ud800", "value": "v"}),
        ("registered-models/set-tag", "POST", {"name": "m0", "key": "k", "value": "\ud800"}),
        ("registered-models/set-tag", "POST", {"name": "m0", "key": "k", "value": 5}),
        ("registered-models/get-latest-versions", "POST", {"name": "m0", "stages": "Production"}),
        ("registered-models/get-latest-versions", "POST", {"name": "m0", "stages": [5]}),
        ("registered-models/get-latest-versions", "POST", {"name": "m0", "stages": [["x"]]}),
        ("registered-models/alias", "POST", {"name": "m0", "alias": 5, "version": "1"}),
        ("registered-models/alias", "POST", {"name": "m0", "alias": "a\ud800", "version": "1"}),
        ("registered-models/rename", "POST", {"name": "m0", "new_name": ""}),
        ("registered-models/rename", "POST", {"name": "m0", "new_name": None}),
        ("registered-models/update", "PATCH", {"name": "m0", "description": "\ud800"}),
        ("model-versions/create", "POST", {"name": "m0", "source": 5}),
        ("model-versions/create", "POST", {"name": "m0", "source": "s" * 2000}),
        ("model-versions/create", "POST", {"name": "m0", "source": "s3://x", "run_id": 5}),
        ("model-versions/create", "POST", {"name": "m0", "source": "s3://x", "tags": "a"}),
        ("model-versions/create", "POST", {"name": "m0", "source": "\ud800"}),
        ("model-versions/create", "POST", {"name": "m0", "source": "models:/m0@\ud800"}),
        ("model-versions/update", "PATCH", {"name": "m0", "version": "1", "description": 5}),
        ("model-versions/transition-stage", "POST", {"name": "m0", "version": "1", "stage": 5}),
        (
            "model-versions/transition-stage",
            "POST",
            {"name": "m0", "version": "1", "stage": "Archived", "archive_existing_versions": {}},
        ),
        (
            "model-versions/transition-stage",
            "POST",
            {"name": "m0", "version": "1", "stage": "None", "archive_existing_versions": [[]]},
        ),
        ("model-versions/set-tag", "POST", {"name": "m0", "version": "1", "key": None}),
        ("model-versions/delete-tag", "DELETE", {"name": "m0", "version": "1", "key": []}),
    ],
)
def test_malformed_bodies_are_a_400(data_scientist, rpc, method, body):
    registered_model = make_model(data_scientist, "m0")
    make_version(data_scientist, registered_model)
    status, answer = _call(_client(data_scientist), method, rpc, body)
    assert 400 <= status < 500 and status not in (408, 429), (status, answer)
    assert RegisteredModel.objects.count() == 1 or status == 200


@pytest.mark.parametrize(
    "query",
    [
        {"name": ["a", "b"]},
        {"name": "m0", "version": ["1", "x"]},
        {"name": "m0", "version": "1" * 30},
        {"name": "m0", "version": " 1 "},
        {"name": "m0\ufffd", "version": "1"},
        {"name": "", "version": "1"},
    ],
)
def test_odd_query_strings_are_a_4xx(data_scientist, query):
    make_version(data_scientist, make_model(data_scientist, "m0"))
    status, body = _call(_client(data_scientist), "GET", "model-versions/get", **query)
    assert status in (200, 400, 404), body


def test_raw_query_bytes_that_are_not_utf8_or_hold_nul_are_a_4xx(data_scientist):
    make_model(data_scientist, "m0")
    client = _client(data_scientist)
    for raw in ("name=%ff%fe", "name=m0%00", "name=%ED%A0%80", "filter=name%3D%27%00%27"):
        response = client.get(f"{API}registered-models/get?{raw}")
        assert 400 <= response.status_code < 500, raw
        response = client.get(f"{API}registered-models/search?{raw}")
        assert 200 <= response.status_code < 500, raw


# --- mlflow-artifacts: what is not a bundle ---------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        f"{ARTIFACTS}?path=bundles/-1",
        f"{ARTIFACTS}?path=bundles/%2B1",
        f"{ARTIFACTS}?path=bundles/1e3",
        f"{ARTIFACTS}?path=bundles/99999999999999999999999999",
        f"{ARTIFACTS}?path=bundles/9223372036854775807",
        f"{ARTIFACTS}?path=bundles/%EF%BC%91",  # fullwidth 1
        f"{ARTIFACTS}?path=bundles//1",
        f"{ARTIFACTS}?path=bundles/1/%2e%2e/%2e%2e/etc/passwd",
        f"{ARTIFACTS}?path=..%2F..%2Fetc%2Fpasswd",
        f"{ARTIFACTS}?path=bundles/1&path=../x",
        f"{ARTIFACTS}/bundles/1%2F..%2F2/MLmodel",
        f"{ARTIFACTS}/bundles/1/..%5C..%5Cx",
        f"{ARTIFACTS}/bundles/%252e%252e/MLmodel",
        f"{ARTIFACTS}//etc/passwd",
        f"{ARTIFACTS}/bundles/99999999999999999999999999/MLmodel",
        f"{ARTIFACTS}/C:/Windows/win.ini",
        f"{ARTIFACTS}/sha256/0000/MLmodel",
    ],
)
def test_artifact_paths_outside_a_bundle_are_4xx(data_scientist, target):
    version = make_version(data_scientist, make_model(data_scientist, "m0"))
    uploaded = make_artifact(data_scientist, version, data=b"x" * 100, filename="model.bin")
    response = _client(data_scientist).get(target.replace("/1/", f"/{uploaded.pk}/"))
    assert response.status_code in (400, 404), (target, response.status_code)


def test_an_uploaded_file_is_not_served_under_any_bundle_id(data_scientist):
    version = make_version(data_scientist, make_model(data_scientist, "m0"))
    uploaded = make_artifact(data_scientist, version, data=b"x" * 100, filename="model.bin")
    client = _client(data_scientist)
    for target in (
        f"{ARTIFACTS}?path=bundles/{uploaded.pk}",
        f"{ARTIFACTS}/bundles/{uploaded.pk}/model.bin",
        f"{ARTIFACTS}/bundles/{uploaded.pk}",
    ):
        assert client.get(target).status_code == 404, target


# --- Authentication ---------------------------------------------------------------------------


def test_a_browser_session_is_not_accepted(data_scientist):
    """A signed-in browser (session cookie) is not a credential here: a page elsewhere cannot
    make the user's browser change the registry (no CSRF check applies to this API)."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(data_scientist)
    status, body = _call(client, "POST", "registered-models/create", {"name": "csrf"})
    assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")
    status, body = _call(client, "GET", "registered-models/search")
    assert status == 401
    assert client.get(f"{ARTIFACTS}?path=bundles/1").status_code == 401
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize(
    "auth",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"alice").decode(),
        "Basic " + base64.b64encode(b":pw").decode(),
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "Basic " + base64.b64encode(b"alice\x00:pw").decode(),
        "Basic " + base64.b64encode(("a" * 100_00 + ":pw").encode()).decode(),
        "Basic a b c",
        "Bearer",
        "Bearer a b",
        "Bearer \u00e9",
        "Token mg_x",
        "basic " + base64.b64encode(b"alice:wrong").decode(),
    ],
)
def test_malformed_credentials_are_a_401(data_scientist, auth):
    status, body = _call(_client(auth=auth), "GET", "registered-models/search")
    assert (status, body.get("error_code")) == (401, "UNAUTHENTICATED"), body


def test_basic_auth_refuses_inactive_sso_only_and_a_token_as_password(data_scientist):
    data_scientist.set_password("correct horse")
    data_scientist.save()
    path = "registered-models/search"
    assert _call(_client(auth=_basic("alice", "correct horse")), "GET", path)[0] == 200
    sso = User.objects.create_user("sso-user")  # unusable password
    assert _call(_client(auth=_basic("sso-user", "")), "GET", path)[0] == 401
    assert _call(_client(auth=_basic("sso-user", "!")), "GET", path)[0] == 401
    token = _token(data_scientist)
    assert _call(_client(auth=_basic("alice", token)), "GET", path)[0] == 401
    assert _call(_client(auth=_basic("token", token)), "GET", path)[0] == 401
    data_scientist.is_active = False
    data_scientist.save()
    assert _call(_client(auth=_basic("alice", "correct horse")), "GET", path)[0] == 401
    assert _call(_client(auth=f"Bearer {token}"), "GET", path)[0] == 401
    assert sso.pk


def test_the_lockout_is_not_bypassed_by_spelling_the_user_name_differently(
    data_scientist, settings
):
    data_scientist.set_password("correct horse")
    data_scientist.save()
    settings.AXES_FAILURE_LIMIT = 3
    path = "registered-models/search"
    for _ in range(3):
        assert _call(_client(auth=_basic("alice", "wrong")), "GET", path)[0] == 401
    status, body = _call(_client(auth=_basic("alice", "correct horse")), "GET", path)
    assert status == 401 and "locked" in body["message"]
    for spelling in ("ALICE", "Alice", " alice", "alice ", "alice\t", "ａｌｉｃｅ"):
        status, body = _call(_client(auth=_basic(spelling, "correct horse")), "GET", path)
        assert status == 401, spelling
    # A token is not a password: it still works for the locked user.
    assert _call(_client(data_scientist), "GET", path)[0] == 200


# --- import_mlflow ---------------------------------------------------------------------------


def test_only_an_active_superuser_may_import(viewer, ml_engineer):
    inactive = User.objects.create_superuser("gone", "", "pw", is_active=False)
    staff = User.objects.create_user("staff", is_staff=True)
    for name in (
        viewer.username,
        ml_engineer.username,
        inactive.username,
        staff.username,
        "nobody",
    ):
        with pytest.raises(CommandError, match="superuser"):
            call_command("import_mlflow", "--from", "http://127.0.0.1:9", "--as", name)
    with pytest.raises(Exception, match="superuser"):
        mlflow_import.import_registry(
            actor=actor_for(ml_engineer), source=mlflow_import.MlflowSource("http://127.0.0.1:9")
        )
    assert not AuditEvent.objects.filter(action="mlflow.imported").exists()


def _snapshot(name: str = "imported", versions: tuple = (), aliases: dict | None = None) -> Any:
    return mlflow_import.MlflowModel(
        name=name, description="", tags={}, aliases=aliases or {}, versions=versions
    )


def _mv(number: int, stage: str = "none", **kw: Any) -> Any:
    fields = {
        "description": "",
        "source": f"s3://m/{number}",
        "run_id": "",
        "run_link": "",
        "status": ModelVersion.Status.READY,
        "status_message": "",
        "tags": {},
        **kw,
    }
    return mlflow_import.MlflowVersion(number=number, stage=stage, **fields)


@pytest.mark.parametrize(
    "item",
    [
        {"version": "0"},
        {"version": "-3"},
        {"version": "1.5"},
        {"version": None},
        {"version": "1", "current_stage": "Production "},
        {"version": "1", "current_stage": "Live"},
        {"version": "1", "current_stage": 5},
        {"version": "1", "status": "ready"},
        {"version": "1", "tags": {"k": "v"}},
        {"version": "1", "tags": [{"key": 5, "value": "v"}]},
        {"version": "1", "source": ["s3://x"]},
    ],
)
def test_the_importer_refuses_versions_it_does_not_understand(item):
    with pytest.raises(mlflow_import.SourceError):
        mlflow_import.parse_version(item)


@pytest.mark.parametrize(
    "snapshot",
    [
        _snapshot("a/b", (_mv(1),)),
        _snapshot(" padded", (_mv(1),)),
        _snapshot("x" * 300, (_mv(1),)),
        _snapshot("tags", (_mv(1, tags={"k": "v" * 100_001}),)),
        _snapshot("many-tags", (_mv(1, tags={f"k{i}": "v" for i in range(500)}),)),
        _snapshot("src", (_mv(1, source="s" * 5000),)),
        _snapshot("alias", (_mv(1),), {"not ok!": 1}),
        _snapshot("reserved", (_mv(1),), {"latest": 1}),
        _snapshot("too-big", (_mv(2**63),)),
    ],
)
def test_the_importer_fails_the_model_rather_than_break_an_invariant(snapshot):
    outcome = mlflow_import.import_model(
        actor=actor_for(superuser()), snapshot=snapshot, source_label="http://mlflow"
    )
    assert outcome.result in ("failed", "refused"), outcome.line()
    assert not RegisteredModel.objects.filter(name=snapshot.name).exists()


def test_an_imported_huge_version_number_does_not_break_registering_the_next(data_scientist):
    outcome = mlflow_import.import_model(
        actor=actor_for(superuser()),
        snapshot=_snapshot("huge", (_mv(2**63 - 1),)),
        source_label="http://mlflow",
    )
    assert outcome.result == "failed" or (
        _call(
            _client(superuser()), "POST", "model-versions/create", {"name": "huge", "source": "s"}
        )[0]
        < 500
    )


def test_a_re_import_does_not_promote_what_modelgate_now_governs():
    actor = actor_for(superuser())
    first = _snapshot("synced", (_mv(1, stage="production"), _mv(2)))
    assert mlflow_import.import_model(actor=actor, snapshot=first, source_label="x").ok
    registered_model = RegisteredModel.objects.get(name="synced")
    gate(registered_model)
    second = _snapshot("synced", (_mv(1, stage="production"), _mv(2, stage="production")))
    mlflow_import.import_model(actor=actor, snapshot=second, source_label="x")
    assert _stages(registered_model)[2] != "production"
