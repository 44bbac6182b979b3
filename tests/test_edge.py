"""The edge layer: NUL bytes and excessive nesting are 4xx JSON errors before any query runs
(on PostgreSQL a NUL reaching a query would be a 500)."""

from __future__ import annotations

import pytest

from tests.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/?name=sc%00",
        "/api/v1/models/scorer/resolve/?alias=pr%00od",
        "/api/v1/promotion-requests/?model=sc%00orer",
        "/api/v1/models/sc%00orer/",
        "/api/v1/training-runs/?q%00=x",
    ],
)
def test_a_nul_byte_in_the_path_or_query_is_a_400_with_a_code(api, data_scientist, path):
    make_model(data_scientist, "scorer")
    r = api(data_scientist).get(path)
    assert r.status_code == 400 and r.json()["code"] == "invalid_characters", r.content
    assert r.json()["message"]


def test_a_nul_byte_on_a_page_is_a_plain_400(client, data_scientist):
    client.force_login(data_scientist)
    r = client.get("/models/?q=a%00b")
    assert r.status_code == 400 and b"NUL" in r.content


@pytest.mark.parametrize(
    "body",
    [
        {"name": "sc\x00orer"},
        {"name": "scorer", "tags": {"te\x00am": "risk"}},
        {"name": "scorer", "tags": {"team": ["a", {"b": "c\x00"}]}},
    ],
)
def test_a_nul_in_a_json_string_or_key_is_refused_and_nothing_is_created(api, data_scientist, body):
    from registry.models import RegisteredModel

    r = api(data_scientist).post("/api/v1/models/", body, format="json")
    assert r.status_code == 400 and r.json()["code"] == "malformed_request", r.content
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize(
    "raw",
    ['{"name": "scorer", "description": "d\\ud800"}', '{"name": "s", "tags": {"\\udfff": "x"}}'],
)
def test_a_lone_surrogate_in_json_is_a_400(api, data_scientist, raw):
    """Valid JSON, but no database can store a lone UTF-16 surrogate (was a 500)."""
    from registry.models import RegisteredModel

    r = api(data_scientist).post("/api/v1/models/", raw, content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "malformed_request", r.content
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize("depth", [250, 100_000])
def test_json_nested_too_deep_is_a_400(api, data_scientist, depth):
    body = "[" * depth + "]" * depth
    r = api(data_scientist).generic(
        "POST", "/api/v1/models/", body, content_type="application/json"
    )
    assert r.status_code == 400 and r.json()["code"] == "malformed_request", r.content[:200]
    assert "nested deeper" in r.json()["message"]


BIG = str(2**63)  # one past the largest value a 64-bit integer column holds
HUGE = "9" * 40


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/models/scorer/compare/?versions=1,{BIG}",
        f"/api/v1/models/scorer/compare/?versions={HUGE},1",
        f"/api/v1/models/scorer/versions/1/card/diff/?to={BIG}",
        f"/api/v1/models/scorer/versions/1/card/diff/?from={HUGE}",
        f"/api/v1/models/scorer/versions/{HUGE}/",
        f"/api/v1/models/scorer/versions/{BIG}/card/",
        "/api/v1/models/scorer/history/?at=0001-01-01T00:00:00%2B05:00",
        "/api/v1/models/scorer/history/?at=9999-12-31T23:00:00-05:00",
        "/api/v1/models/scorer/history/?at=2026-02-30T00:00:00Z",
        "/api/v1/audit/events/?since=0001-01-01T00:00:00%2B05:00",
        "/api/v1/audit/events/?until=9999-12-31T23:59:59-01:00",
        "/api/v1/audit/events/?since=2026-01-01T00:00:00%2B99:00",
    ],
)
def test_out_of_range_numbers_and_times_are_4xx_json(api, admin_user, path):
    from tests.factories import make_version

    make_version(admin_user, make_model(admin_user, "scorer"))
    r = api(admin_user).get(path)
    assert 400 <= r.status_code < 500, (r.status_code, r.content[:300])
    assert r.json()["code"] and r.json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/models/?q=metrics.auc%20%3E%20{HUGE}",
        f"/api/v1/model-versions/?q=version%20%3D%20{HUGE}",
        f"/api/v1/model-versions/?q=version%20%3E%20-{HUGE}",
    ],
)
def test_huge_numbers_in_a_search_expression_are_answered(api, admin_user, path):
    from tests.factories import make_version

    make_version(admin_user, make_model(admin_user, "scorer"))
    r = api(admin_user).get(path)
    assert r.status_code < 500, (r.status_code, r.content[:300])
    assert "results" in r.json() or r.json()["code"]


def test_an_offset_postgresql_does_not_accept_is_read_as_the_same_instant_in_utc(api, admin_user):
    """Schemathesis found this one: PostgreSQL refuses offsets past 15:59 (a 500 before)."""
    make_model(admin_user, "scorer")
    r = api(admin_user).get("/api/v1/models/scorer/history/?at=0543-08-02T06:30:36-17:36")
    assert r.status_code == 200 and r.json()["at"] == "0543-08-03T00:06:36Z", r.content


@pytest.mark.parametrize(
    "path",
    [
        f"/models/scorer/compare/?versions=1,{BIG}",
        f"/models/scorer/compare/?v=1&v={HUGE}",
        "/models/scorer/?at=0001-01-01T00:00:00%2B05:00",
        "/models/scorer/?at=0543-08-02T06:30:36-17:36",
        "/audit/?since=0001-01-01T00:00:00%2B05:00&until=9999-12-31T23:59:59-01:00",
        f"/models/scorer/versions/{HUGE}/",
        f"/models/scorer/versions/1/card/history/?a=1&b={BIG}",
    ],
)
def test_out_of_range_numbers_and_times_on_pages_are_not_500(client, admin_user, path):
    from tests.factories import make_version

    make_version(admin_user, make_model(admin_user, "scorer"))
    client.force_login(admin_user)
    r = client.get(path)
    assert r.status_code < 500, (r.status_code, r.content[:300])


def test_deeply_nested_yaml_front_matter_is_a_400(api, admin_user):
    from tests.factories import make_version

    make_version(admin_user, make_model(admin_user, "scorer"))
    readme = "---\nx: " + "[" * 100_000 + "]" * 100_000 + "\n---\n# Model\n"
    r = api(admin_user).post(
        "/api/v1/models/scorer/versions/1/card/import/", {"readme": readme}, format="json"
    )
    assert r.status_code == 400 and r.json()["code"], r.content[:300]


def test_yaml_aliases_in_front_matter_are_refused(api, admin_user):
    """Nested aliases expand exponentially once stored as JSON (a "billion laughs")."""
    from tests.factories import make_version

    make_version(admin_user, make_model(admin_user, "scorer"))
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    readme = "---\n" + "\n".join(lines) + "\n---\n# Model\n"
    r = api(admin_user).post(
        "/api/v1/models/scorer/versions/1/card/import/", {"readme": readme}, format="json"
    )
    assert r.status_code == 400 and "aliases" in r.json()["message"], r.content[:300]


def test_a_body_over_the_memory_limit_is_a_json_413(api, admin_user, settings):
    body = b'{"name": "' + b"a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    r = api(admin_user).generic("POST", "/api/v1/models/", body, content_type="application/json")
    assert r.status_code == 413 and r.json()["code"] == "too_large", r.content[:300]
    from registry.models import RegisteredModel

    assert not RegisteredModel.objects.exists()


def test_a_page_post_over_the_memory_limit_is_a_413(client, admin_user, settings):
    client.force_login(admin_user)
    r = client.post(
        "/requests/new/", {"justification": "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}
    )
    assert r.status_code == 413, (r.status_code, r.content[:200])


def test_an_api_token_added_in_the_admin_with_a_past_expiry_is_a_form_error(client, admin_user):
    from core.models import ApiToken

    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    r = client.post(
        "/admin/core/apitoken/add/",
        {
            "user": admin_user.pk,
            "name": "ci",
            "expires_at_0": "2020-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert r.status_code == 200 and b"Expiry must be in the future" in r.content
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_nul_byte_in_a_page_form_is_a_400_and_changes_nothing(client, admin_user, encoding):
    from urllib.parse import urlencode

    from tests.factories import make_version

    version = make_version(admin_user, make_model(admin_user, "scorer"))
    client.force_login(admin_user)
    revision = version.card.revision
    form = {"section_intended_use": "fine\x00", "base_revision": revision}
    if encoding == "urlencoded":
        r = client.post(
            "/models/scorer/versions/1/card/edit/",
            urlencode(form),
            content_type="application/x-www-form-urlencoded",
        )
    else:
        r = client.post("/models/scorer/versions/1/card/edit/", form)
    assert r.status_code == 400 and b"NUL" in r.content
    version.card.refresh_from_db()
    assert version.card.revision == revision
