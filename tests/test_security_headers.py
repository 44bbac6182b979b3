"""Content-Security-Policy on every response, templates that satisfy it, and the API schema
and docs behind login (issue 12: "No Content-Security-Policy"; the schema and docs pages behind
login unless a setting opens them). The browser proof that pages raise no violation is
tests/browser/test_csp.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.template import engines

from core.tokens import token_create
from tests.factories import actor_for, make_model, make_version

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";"))}


def _assert_strict(response) -> None:
    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    assert "unsafe" not in response["Content-Security-Policy"]


def test_pages_api_answers_and_errors_carry_the_policy(client, api, data_scientist):
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model)
    for response in (
        client.get("/login/"),
        client.get("/admin/login/"),
        client.get("/models/"),  # a redirect to the sign-in page
        api().get("/api/v1/models/"),  # a 401
        api(data_scientist).get("/api/v1/models/"),
        api(data_scientist).get("/api/v1/nothing/"),
    ):
        assert response.status_code < 500
        _assert_strict(response)
    client.force_login(data_scientist)
    for path in (
        "/",
        "/models/",
        "/models/churn/",
        "/models/churn/versions/1/",
        "/models/churn/versions/1/card/",
        "/audit/",
        "/api/docs/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        _assert_strict(response)


def test_form_action_takes_more_origins_from_the_environment():
    code = (
        "import config.settings as s; "
        "print(' '.join(s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']))"
    )
    env = {**os.environ, "CSP_FORM_ACTION_EXTRA": "https://idp.example.com, https://sso.test"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["'self'", "https://idp.example.com", "https://sso.test"]


def _templates() -> list[Path]:
    dirs = [ROOT / "templates", *ROOT.glob("*/templates")]
    found = sorted(p for d in dirs for p in d.rglob("*.html") if ".venv" not in p.parts)
    assert len(found) > 20
    return found


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
STYLE = re.compile(r"<style\b|<[^>]*\sstyle\s*=", re.I)


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_has_inline_script_handlers_or_styles(path):
    text = path.read_text()
    assert not INLINE_SCRIPT.search(text), "an inline <script>: move it to static/js/"
    assert not HANDLER.search(text), "an on*= handler: use a data- attribute and static/js/"
    assert not STYLE.search(text), "an inline style: use a class in static/css/"
    engines["django"].from_string(text)  # still a template that parses


def test_the_scan_catches_what_it_looks_for():
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/js/x.js" defer></script>')
    assert HANDLER.search('<button type="button" onclick="go()">')
    assert not HANDLER.search("<button data-print>Print</button>")
    assert STYLE.search('<span style="width: 3%">') and STYLE.search("<style>p{}</style>")


def test_schema_and_docs_are_for_signed_in_users_by_default(client, api, viewer):
    r = api().get("/api/schema/")
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
    r = client.get("/api/docs/")
    assert r.status_code == 302 and r["Location"] == "/login/?next=/api/docs/"
    r = client.get("/api/docs/?script=")
    assert r.status_code == 302 and "/login/" in r["Location"]

    client.force_login(viewer)
    r = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200 and "/api/v1/models/" in r.json()["paths"]
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert not INLINE_SCRIPT.search(html) and "<style" not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()

    _, secret = token_create(actor=actor_for(viewer), user=viewer, name="tools")
    r = api().get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert r.status_code == 200  # tools read the schema with a token


def test_api_docs_public_opens_schema_and_docs(client, api, settings):
    settings.API_DOCS_PUBLIC = True
    assert api().get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/docs/?script=").status_code == 200
