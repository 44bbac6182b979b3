"""The schema check every API test runs through (tests/openapi_check.py) fails on what it
must: undeclared or mistyped fields, undocumented successes, errors off the common shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse, JsonResponse
from django.urls import path

from tests import openapi_check
from tests.factories import make_model, make_version


def answer(method: str, url: str, body: Any, status: int = 200) -> HttpResponse:
    response = (
        JsonResponse(body, status=status, safe=False)
        if body is not None
        else HttpResponse(status=status)
    )
    response.request = {"PATH_INFO": url, "REQUEST_METHOD": method}
    return response


def failure(response: HttpResponse) -> str:
    with pytest.raises(pytest.fail.Exception) as caught:
        openapi_check.check(response)
    return str(caught.value)


@pytest.fixture
def shown_model(api: Any, data_scientist: User) -> dict[str, Any]:
    make_version(data_scientist, make_model(data_scientist, "scorer"))
    response = api(data_scientist).get("/api/v1/models/scorer/")
    assert response.status_code == 200
    return response.json()


def test_a_real_answer_fits_its_schema(shown_model: dict[str, Any]) -> None:
    openapi_check.check(answer("GET", "/api/v1/models/scorer/", shown_model))


def test_an_undeclared_field_fails_naming_operation_status_and_path(
    shown_model: dict[str, Any],
) -> None:
    message = failure(answer("GET", "/api/v1/models/scorer/", {**shown_model, "secret": 1}))
    assert "v1_models_retrieve (GET /api/v1/models/{name}/) answered 200" in message
    assert "at $: Additional properties are not allowed ('secret' was unexpected)" in message


def test_a_mistyped_nested_field_is_named_by_its_json_path(api: Any, data_scientist: User) -> None:
    make_version(data_scientist, make_model(data_scientist, "scorer"))
    body = api(data_scientist).get("/api/v1/models/scorer/versions/").json()
    body["results"][0]["metrics"][0]["value"] = "high"
    message = failure(answer("GET", "/api/v1/models/scorer/versions/", body))
    assert "at $.results[0].metrics[0].value: 'high' is not of type 'number'" in message


def test_a_missing_declared_field_fails(shown_model: dict[str, Any]) -> None:
    del shown_model["risk_tier"]
    assert "required properties missing: risk_tier" in failure(
        answer("GET", "/api/v1/models/scorer/", shown_model)
    )


def test_an_undocumented_success_status_fails(shown_model: dict[str, Any]) -> None:
    message = failure(answer("GET", "/api/v1/models/scorer/", shown_model, status=202))
    assert "undocumented status: 202" in message


def test_errors_must_have_the_common_shape() -> None:
    good = {"code": "not_found", "message": "No such model.", "fields": {}, "extra": 3}
    openapi_check.check(answer("GET", "/api/v1/models/nothing/", good, status=404))
    message = failure(answer("GET", "/api/v1/models/nothing/", {"detail": "x"}, status=404))
    assert "does not match the error shape" in message
    assert "at $: required properties missing: code, message, fields" in message
    bad_fields = {"code": "validation_failed", "message": "m", "fields": {"name": "no"}}
    assert "at $.fields.name: 'no' is not of type 'array'" in failure(
        answer("POST", "/api/v1/models/", bad_fields, status=400)
    )


def test_an_error_that_is_not_json_fails() -> None:
    response = HttpResponse("<h1>Not Found</h1>", status=404, content_type="text/html")
    response.request = {"PATH_INFO": "/api/v1/nowhere/", "REQUEST_METHOD": "GET"}
    assert "an error answered as 'text/html', not as JSON" in failure(response)


def test_a_success_on_an_undocumented_path_or_method_fails() -> None:
    assert "undocumented operation" in failure(answer("GET", "/api/v1/nowhere/", {}))
    assert "undocumented operation" in failure(answer("PUT", "/api/v1/models/", {}))


def test_a_documented_empty_answer_must_be_empty() -> None:
    openapi_check.check(answer("DELETE", "/api/v1/models/scorer/", None, status=204))
    message = failure(answer("DELETE", "/api/v1/models/scorer/", {"deleted": True}, status=204))
    assert "204 is documented without a body" in message


def test_pages_outside_the_api_are_not_checked() -> None:
    openapi_check.check(answer("GET", "/models/", {"anything": 1}, status=201))


def _off_schema(request: Any) -> JsonResponse:
    return JsonResponse({"results": [{"name": 5}]})


urlpatterns = [path("api/v1/models/", _off_schema)]


@pytest.mark.urls(__name__)
def test_the_test_client_fails_the_test_that_received_an_off_schema_answer(
    api: Any, viewer: User
) -> None:
    with pytest.raises(pytest.fail.Exception) as caught:
        api(viewer).get("/api/v1/models/")
    message = str(caught.value)
    assert "v1_models_list (GET /api/v1/models/) answered 200" in message
    assert "at $.results[0].name: 5 is not of type 'string'" in message
