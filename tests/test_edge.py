"""The edge layer: NUL bytes and excessive nesting are 4xx JSON errors before any query runs
(on PostgreSQL a NUL reaching a query would be a 500)."""

from __future__ import annotations

import pytest

from tests.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", [
    "/api/v1/models/?name=sc%00",
    "/api/v1/models/scorer/resolve/?alias=pr%00od",
    "/api/v1/promotion-requests/?model=sc%00orer",
    "/api/v1/models/sc%00orer/",
    "/api/v1/training-runs/?q%00=x",
])
def test_a_nul_byte_in_the_path_or_query_is_a_400_with_a_code(api, data_scientist, path):
    make_model(data_scientist, "scorer")
    r = api(data_scientist).get(path)
    assert r.status_code == 400 and r.json()["code"] == "invalid_characters", r.content
    assert r.json()["message"]


def test_a_nul_byte_on_a_page_is_a_plain_400(client, data_scientist):
    client.force_login(data_scientist)
    r = client.get("/models/?q=a%00b")
    assert r.status_code == 400 and b"NUL" in r.content


@pytest.mark.parametrize("body", [
    {"name": "sc\x00orer"},
    {"name": "scorer", "tags": {"te\x00am": "risk"}},
    {"name": "scorer", "tags": {"team": ["a", {"b": "c\x00"}]}},
])
def test_a_nul_in_a_json_string_or_key_is_refused_and_nothing_is_created(api, data_scientist,
                                                                         body):
    from registry.models import RegisteredModel

    r = api(data_scientist).post("/api/v1/models/", body, format="json")
    assert r.status_code == 400 and r.json()["code"] == "malformed_request", r.content
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize("depth", [250, 100_000])
def test_json_nested_too_deep_is_a_400(api, data_scientist, depth):
    body = "[" * depth + "]" * depth
    r = api(data_scientist).generic("POST", "/api/v1/models/", body,
                                    content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "malformed_request", r.content[:200]
    assert "nested deeper" in r.json()["message"]
