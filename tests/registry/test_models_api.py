from __future__ import annotations

import pytest

from core import permissions
from core.models import AuditEvent
from core.permissions import Perm
from registry.models import RegisteredModel
from tests.factories import make_model, make_version, place

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/"


def _error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"]
    assert isinstance(body["fields"], dict)
    return body


def test_create_returns_the_model_and_audits(api, data_scientist):
    r = api(data_scientist).post(
        URL,
        {
            "name": "credit-risk",
            "risk_tier": "high",
            "tags": {"team": "risk"},
            "description": "# Hi",
        },
        format="json",
    )
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "credit-risk" and body["owner"] == "alice"
    assert body["tags"] == {"team": "risk"} and body["risk_tier"] == "high"
    assert body["last_version_number"] == 0 and body["url"] == "/api/v1/models/credit-risk/"
    assert AuditEvent.objects.filter(action="registered_model.created").count() == 1


def test_duplicate_name_is_409(api, data_scientist):
    make_model(data_scientist, "dup")
    body = _error(
        api(data_scientist).post(URL, {"name": "dup"}, format="json"),
        409,
        "registered_model_exists",
    )
    assert "name" in body["fields"]


@pytest.mark.parametrize("name", ["", "a/b", "x" * 257, "bad\u0007bell"])
def test_invalid_names_are_400(api, data_scientist, name):
    _error(api(data_scientist).post(URL, {"name": name}, format="json"), 400, "invalid_name")
    assert not RegisteredModel.objects.exists()


def test_malformed_json_is_400(api, data_scientist):
    r = api(data_scientist).post(URL, data=b'{"name": ', content_type="application/json")
    _error(r, 400, "malformed_request")


def test_non_utf8_body_is_400(api, data_scientist):
    r = api(data_scientist).post(URL, data=b'{"name": "\xff\xfe"}', content_type="application/json")
    _error(r, 400, "malformed_request")
    assert not RegisteredModel.objects.exists()


def test_wrong_types_are_400_with_field_errors(api, data_scientist):
    r = api(data_scientist).post(
        URL, {"name": "m", "tags": ["not", "a", "dict"], "risk_tier": "extreme"}, format="json"
    )
    body = _error(r, 400, "validation_failed")
    assert set(body["fields"]) == {"tags", "risk_tier"}


def test_a_body_that_is_not_an_object_is_400(api, data_scientist):
    _error(api(data_scientist).post(URL, [1, 2], format="json"), 400, "invalid_payload")


@pytest.mark.parametrize("field", ["created_by", "created_at", "last_version_number", "id"])
def test_server_owned_fields_are_refused(api, data_scientist, field):
    body = _error(
        api(data_scientist).post(URL, {"name": "m", field: "x"}, format="json"),
        400,
        "read_only_field",
    )
    assert field in body["fields"]
    assert not RegisteredModel.objects.exists()


def test_unknown_fields_are_refused(api, data_scientist):
    _error(
        api(data_scientist).post(URL, {"name": "m", "colour": "red"}, format="json"),
        400,
        "unknown_field",
    )


def test_unknown_owner_is_a_field_error(api, data_scientist):
    body = _error(
        api(data_scientist).post(URL, {"name": "m", "owner": "ghost"}, format="json"),
        400,
        "validation_failed",
    )
    assert "owner" in body["fields"]


def test_unknown_model_is_404(api, data_scientist):
    _error(api(data_scientist).get(URL + "nope/"), 404, "registered_model_not_found")


def test_unauthenticated_is_401(api):
    r = api().get(URL)
    _error(r, 401, "not_authenticated")
    assert r["WWW-Authenticate"] == "Bearer"


def test_list_hides_models_without_grant(api, data_scientist, outsider):
    visible = make_model(data_scientist, "granted")
    make_model(data_scientist, "hidden")
    permissions.grant(Perm.VIEW, visible, user=outsider)
    names = [m["name"] for m in api(outsider).get(URL).json()["results"]]
    assert names == ["granted"]
    _error(api(outsider).get(URL + "hidden/"), 404, "registered_model_not_found")


def test_list_filters(api, data_scientist, reviewer):
    a = make_model(data_scientist, "credit-a", risk_tier="high", tags={"team": "risk"})
    make_model(data_scientist, "credit-b", tags={"team": "growth"})
    make_model(data_scientist, "other", risk_tier="high")
    v = make_version(data_scientist, a)
    place(v, "production")
    client = api(data_scientist)

    def names(**params):
        r = client.get(URL, params)
        assert r.status_code == 200, r.content
        return [m["name"] for m in r.json()["results"]]

    assert names(name="CREDIT") == ["credit-a", "credit-b"]
    assert names(tag="team=risk") == ["credit-a"]
    assert names(risk_tier="high") == ["credit-a", "other"]
    assert names(stage="production") == ["credit-a"]
    assert names(owner="alice", ordering="-name") == ["other", "credit-b", "credit-a"]
    assert names(q="name LIKE 'credit%' AND NOT tags.team = 'growth'") == ["credit-a"]
    _error(client.get(URL, {"stage": "prod"}), 400, "invalid_filter")
    _error(client.get(URL, {"tag": "novalue"}), 400, "invalid_filter")


def test_list_paginates_with_a_cursor(api, data_scientist):
    for i in range(5):
        make_model(data_scientist, f"m{i}")
    client = api(data_scientist)
    first = client.get(URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    seen = [m["name"] for page in (first, second, third) for m in page["results"]]
    assert seen == ["m0", "m1", "m2", "m3", "m4"] and third["next"] is None


@pytest.mark.parametrize("rows", [1, 30])
def test_list_query_count_is_constant(
    api, data_scientist, outsider, django_assert_max_num_queries, rows
):
    for i in range(rows):
        registered_model = make_model(data_scientist, f"m{i}", tags={"a": "1", "b": "2"})
        make_version(data_scientist, registered_model)
        permissions.grant(Perm.VIEW, registered_model, user=outsider)
    client = api(outsider)
    with django_assert_max_num_queries(8):
        r = client.get(URL, {"page_size": 100})
    assert len(r.json()["results"]) == rows


def test_patch_updates_and_rename_keeps_versions(api, data_scientist):
    registered_model = make_model(data_scientist, "old")
    make_version(data_scientist, registered_model)
    r = api(data_scientist).patch(URL + "old/", {"name": "new", "description": "d"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "new"
    assert api(data_scientist).get(URL + "new/versions/1/").status_code == 200


def test_viewer_patch_is_403_and_changes_nothing(api, data_scientist, viewer):
    make_model(data_scientist, "m", description="before")
    _error(
        api(viewer).patch(URL + "m/", {"description": "after"}, format="json"),
        403,
        "permission_denied",
    )
    assert RegisteredModel.objects.get().description == "before"


def test_delete_hides_the_model(api, data_scientist):
    make_model(data_scientist, "m")
    assert api(data_scientist).delete(URL + "m/").status_code == 204
    _error(api(data_scientist).get(URL + "m/"), 404, "registered_model_not_found")
    assert RegisteredModel.objects.get().deleted_at is not None


def test_tags_endpoint_sets_and_removes(api, data_scientist):
    make_model(data_scientist, "m")
    client = api(data_scientist)
    r = client.put(URL + "m/tags/team/", {"value": "risk"}, format="json")
    assert r.json()["tags"] == {"team": "risk"}
    assert client.delete(URL + "m/tags/team/").status_code == 204
    assert client.get(URL + "m/").json()["tags"] == {}


def test_unknown_api_path_is_json_404(client):
    r = client.get("/api/v1/nothing-here/")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_openapi_schema_and_docs_are_served(api, viewer):
    client = api(viewer)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/models/{name}/versions/{number}/validate/" in paths
    assert "/api/v1/models/{name}/resolve/" in paths
    assert client.get("/api/docs/").status_code == 200


def test_model_shows_tags_aliases_and_newest_version_per_live_stage(api, data_scientist, reviewer):
    from registry import services
    from tests.factories import actor_for

    registered_model = make_model(data_scientist, "m", tags={"b": "2", "a": "1"})
    v1, v2, v3, v4 = (make_version(data_scientist, registered_model) for _ in range(4))
    place(v1, "production")
    place(v2, "production")
    place(v3, "staging")
    place(v4, "archived")
    services.alias_set(
        actor=actor_for(data_scientist),
        registered_model=registered_model,
        name="champion",
        version=v2,
    )
    for body in (
        api(data_scientist).get(URL + "m/").json(),
        api(data_scientist).get(URL).json()["results"][0],
    ):
        assert body["tags"] == {"a": "1", "b": "2"}
        assert body["aliases"] == {"champion": 2}
        assert body["latest_versions"] == {"production": 2, "staging": 3}
    bare = make_model(data_scientist, "bare")
    assert bare.pk
    body = api(data_scientist).get(URL + "bare/").json()
    assert (body["tags"], body["aliases"], body["latest_versions"]) == ({}, {}, {})


@pytest.mark.parametrize("name", ["plain", "with space", "ünï-cødé", "50%:off", "a+b=c&d"])
def test_links_match_the_url_configuration(api, data_scientist, name):
    from django.urls import reverse

    registered_model = make_model(data_scientist, name)
    make_version(data_scientist, registered_model)
    from registry.models import ModelVersion
    from tests.factories import make_artifact

    artifact = make_artifact(data_scientist, ModelVersion.objects.get())
    client = api(data_scientist)
    model_url = reverse("registry-api:model-detail", args=[name])
    body = client.get(model_url).json()
    assert body["url"] == model_url
    version = client.get(reverse("registry-api:version-detail", args=[name, 1])).json()
    assert version["url"] == reverse("registry-api:version-detail", args=[name, 1])
    download = reverse("registry-api:artifact-download", args=[name, 1, artifact.pk])
    assert version["artifacts"][0]["download_url"] == download
    assert client.get(download).status_code == 200
