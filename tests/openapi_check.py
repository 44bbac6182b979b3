"""Every answer the tests receive from /api/v1/ is checked against the OpenAPI schema.

A pytest plugin (registered by tests/conftest.py): it wraps Django's test client, which DRF's
APIClient builds on, and checks each response to a path under /api/v1/ against the schema
that `manage.py spectacular` writes, generated once per session:

- a documented status: its JSON body against the operation's response schema, read as a
  closed contract (an object the schema describes with properties may carry no other key, so
  a field the code adds without declaring it is caught too); a documented empty answer (204)
  must be empty; any other body must have a documented media type;
- an undocumented status of 400 or more: the body against the common error shape
  (core.api.error_body, written once by the exception handler), see ERROR_SHAPE;
- an undocumented success or redirect, or an undocumented operation: a failure.

A mismatch fails the test that made the request, naming the operation, the status and the
JSON path of each mismatch. MODELGATE_OPENAPI_CHECK=0 turns the check off (to measure it).
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import Resolver404, resolve
from jsonschema.exceptions import ValidationError, best_match
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

PREFIX = "/api/v1/"

# The shape of every error, as core.api.error_body writes it: a stable snake_case code, a
# message, field messages, and the few extras some errors add (e.g. the current revision).
ERROR_SHAPE: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "fields"],
    "properties": {
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "message": {"type": "string", "minLength": 1},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "additionalProperties": True,
}


def enabled() -> bool:
    return os.environ.get("MODELGATE_OPENAPI_CHECK", "1") not in ("0", "false", "")


# The project's URLconf, taken when the session starts: a test that swaps in URLs of its own
# (pytest.mark.urls) must not become the schema of the whole session.
_urlconf: list[str] = []


@cache
def openapi_schema() -> dict[str, Any]:
    """The schema `manage.py spectacular` writes (same generator, same renderer), once."""
    from drf_spectacular.renderers import OpenApiJsonRenderer
    from drf_spectacular.settings import spectacular_settings

    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS(
        urlconf=_urlconf[0] if _urlconf else None
    )
    schema = generator.get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))


_NULL = {"type": "object", "nullable": True, "enum": [None]}


def _closed(node: Any) -> Any:
    """A copy in which every object schema that lists properties allows no others: the
    declared fields are the whole answer (free-form objects, without properties, stay open).
    `nullable` beside `allOf` (how drf-spectacular writes a nullable nested object) reads as
    "this or null", as drf-spectacular and schemathesis mean it; a strict OAS 3.0.3 reader
    ignores nullable without a type in the same schema object."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.get("nullable") is True and "type" not in out:
        rest = {k: v for k, v in out.items() if k != "nullable"}
        out = {"anyOf": [rest, _NULL]}
    return out


@cache
def _components() -> dict[str, Any]:
    return _closed(copy.deepcopy(openapi_schema().get("components", {})))


@cache
def _validator(template: str | None, method: str, status: int, media_type: str) -> Any:
    """The validator of one answer's body; cached, as the suite asks the same ones often."""
    documented = _documented(template, method, status)
    if documented is None:
        schema = ERROR_SHAPE
    else:
        schema = ((documented.get("content") or {}).get(media_type) or {}).get("schema")
        if schema is None:
            return None
    schema = {**_closed(schema), "components": _components()}
    return OAS30ReadValidator(schema, format_checker=oas30_format_checker)


def _operation(template: str | None, method: str) -> dict[str, Any] | None:
    return (openapi_schema()["paths"].get(template or "") or {}).get(method.lower())


def _documented(template: str | None, method: str, status: int) -> dict[str, Any] | None:
    return ((_operation(template, method) or {}).get("responses") or {}).get(str(status))


def _shape(template: str) -> str:
    """A path template without its parameter names ('/models/{}/'): the schema calls a
    URL's `pk` `id`, as DRF's schema generators do."""
    return re.sub(r"\{[^{}]+\}", "{}", template)


@cache
def _templates() -> dict[str, str]:
    return {_shape(t): t for t in openapi_schema()["paths"]}


def _template(path: str) -> str | None:
    """The schema's path template for a request path ('/api/v1/models/{name}/'), from the
    URL pattern Django resolves it to; None when nothing matches."""
    try:
        route = resolve(path).route
    except Resolver404:
        return None
    found = "/" + re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", route)
    return _templates().get(_shape(found), found)


def _media_type(response: Any) -> str:
    return (response.get("Content-Type") or "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: ValidationError) -> str:
    deepest = best_match([error]) if error.context else error
    message = deepest.message
    if deepest.validator == "required" and isinstance(deepest.instance, dict):
        # One line for all the declared fields an object lacks, not one per field.
        missing = [k for k in deepest.validator_value if k not in deepest.instance]
        message = f"required properties missing: {', '.join(missing)}"
    elif deepest.context:
        # No branch of a oneOf/anyOf fits and none fits better: say why each does not.
        message = f"fits none of the {deepest.validator} branches: " + "; ".join(
            f"[{e.schema_path[0]}] {e.json_path}: {_shorten(e.message, 100)}"
            for e in sorted(deepest.context, key=lambda e: list(map(str, e.schema_path)))[:4]
        )
    shown = _shorten(json.dumps(deepest.instance, default=str))
    return f"  at {deepest.json_path}: {message}\n    value: {shown}"


def problems(method: str, path: str, response: Any) -> tuple[str, list[str]]:
    """(what was called, what is wrong with its answer); empty when the answer fits."""
    status = response.status_code
    template = _template(path)
    operation = _operation(template, method)
    label = f"{method} {path}"
    if operation is not None:
        label = f"{operation['operationId']} ({method} {template})"
    documented = _documented(template, method, status)
    media_type = _media_type(response)
    streaming = getattr(response, "streaming", False)

    if documented is None:
        if status < 400:
            why = "undocumented operation" if operation is None else "undocumented status"
            return label, [f"{why}: {status} is not in the schema's responses"]
        what = "the error shape (core.api.error_body)"
    else:
        content = documented.get("content") or {}
        if not content:
            body = b"" if streaming else response.content
            return label, ([] if not body else [f"{status} is documented without a body"])
        if media_type not in content and "application/octet-stream" not in content:
            return label, [f"media type {media_type!r} is not documented for {status}"]
        what = "the documented response"
    if streaming or not _is_json(media_type):
        if documented is None:
            return label, [f"an error answered as {media_type!r}, not as JSON"]
        return label, []
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        return label, [f"the body is not JSON ({exc})"]
    validator = _validator(template, method, status, media_type)
    if validator is None:
        return label, []
    errors = sorted(
        validator.iter_errors(body),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if not errors:
        return label, []
    described = list(dict.fromkeys(_describe(e) for e in errors))
    listed = described[:8]
    if len(described) > 8:
        listed.append(f"  ... and {len(described) - 8} more")
    return label, [f"the body does not match {what}:", *listed]


# Answers checked and seconds spent (schema generation included), for the summary line.
_spent = {"answers": 0, "seconds": 0.0}


def check(response: Any) -> None:
    __tracebackhide__ = True
    request = getattr(response, "request", None) or {}
    path = request.get("PATH_INFO", "")
    if not path.startswith(PREFIX):
        return
    started = time.perf_counter()
    try:
        label, found = problems(request.get("REQUEST_METHOD", "GET"), path, response)
    finally:
        _spent["answers"] += 1
        _spent["seconds"] += time.perf_counter() - started
    if found:
        pytest.fail(f"OpenAPI check: {label} answered {response.status_code}:\n" + "\n".join(found))


def _checked(request: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Client, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        response = request(self, **kwargs)
        check(response)
        return response

    return wrapper


@pytest.fixture(autouse=True, scope="session")
def _openapi_checked_client() -> Iterator[None]:
    """Django's test client (and so DRF's APIClient) checks what /api/v1/ answers."""
    if not enabled():
        yield
        return
    _urlconf[:] = [settings.ROOT_URLCONF]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "request", _checked(Client.request))
        yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _spent["answers"]:
        terminalreporter.write_line(
            f"OpenAPI check: {_spent['answers']} answers from {PREFIX} checked against the "
            f"schema in {_spent['seconds']:.1f} s"
        )
