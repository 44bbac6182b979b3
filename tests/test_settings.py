from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_size
from tests.readme import production

ROOT = Path(__file__).resolve().parent.parent


def test_env_helpers_parse_good_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "off")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    monkeypatch.setenv("X_SIZE", "500MB")
    assert env_bool("X_BOOL", True) is False
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST") == ["a", "b", "c"]
    assert env_size("X_SIZE", 1) == 500 * 1024**2
    assert env_size("X_UNSET", 7) == 7


@pytest.mark.parametrize(
    "reader,value",
    [
        (lambda: env_bool("X", True), "maybe"),
        (lambda: env_int("X", 1), "ten"),
        (lambda: env_int("X", 1, minimum=1), "0"),
        (lambda: env_size("X", 1), "2 parsecs"),
        (lambda: env_size("X", 1), "0"),
    ],
)
def test_malformed_values_stop_start_up_naming_the_variable(monkeypatch, reader, value):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match="^X "):
        reader()


def test_production_refuses_to_start_without_secret_key(tmp_path):
    import subprocess
    import sys

    env = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "x",
        "MODELGATE_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; "
            "os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
            "django.setup()",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def _deploy_check(tmp_path: Path, **overrides: str) -> set[str]:
    """`manage.py check --deploy` under the README's production environment (its `...`
    secret replaced by a real one): the ids of the warnings it reports."""
    import subprocess
    import sys

    environment = production().environment
    assert environment.pop("SECRET_KEY") == "...", "the README shows no real secret"
    env = {
        "PATH": os.environ["PATH"],
        "MODELGATE_VAR_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(50),
        **environment,
        **overrides,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    issues = set(re.findall(r"\((\w+\.[EW]\d+)\)", result.stderr))
    assert (result.returncode == 0) == (not issues), result.stderr
    assert issues or "no issues" in result.stdout, result.stdout + result.stderr
    return issues


def test_check_deploy_is_clean_under_the_readme_production_settings(tmp_path):
    environment = production().environment
    assert environment["DEBUG"] == "false"
    assert _deploy_check(tmp_path) == set()


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ("plain_http", {"security.W008", "security.W012", "security.W016"}),
        ({"SECURE_HSTS_SECONDS": "0"}, {"security.W004"}),
        ({"SECURE_HSTS_INCLUDE_SUBDOMAINS": "false"}, {"security.W005"}),
    ],
)
def test_each_tls_switch_comes_from_the_environment(tmp_path, overrides, expected):
    """The README's plain-HTTP switches turn off exactly what needs TLS; the HSTS variables
    reach the settings (check --deploy names what each one turns off)."""
    if overrides == "plain_http":
        overrides = production().plain_http
    assert _deploy_check(tmp_path, **overrides) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "secure_cookies,https,hint", [(True, False, True), (True, True, False), (False, False, False)]
)
def test_a_refused_form_over_plain_http_names_the_secure_cookie_switches(
    settings, secure_cookies, https, hint
):
    """Signing in to a production install over http failed with a bare 403 "CSRF cookie not
    set": the browser never returns a secure cookie over http. It stays a 403, with the why."""
    from django.test import Client

    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = secure_cookies
    response = Client(enforce_csrf_checks=True).post(
        "/login/",
        {"username": "a", "password": "b"},
        secure=https,
        headers={"referer": "https://testserver/login/"} if https else {},
    )
    assert response.status_code == 403
    body = response.content.decode()
    assert "Form refused" in body and "CSRF cookie not set" in body
    assert ("SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false" in body) is hint


def _database_options(tmp_path: Path, **env: str) -> dict:
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
            "from django.conf import settings; "
            "print(json.dumps(settings.DATABASES['default']['OPTIONS']))",
        ],
        env={
            "MODELGATE_VAR_DIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": "postgres://u@db.example:5432/modelgate",
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_postgresql_prepares_statements_unless_turned_off(tmp_path):
    """Parameters are bound on the server and a statement run 5 times on a connection is
    prepared (planning cost more than running the registry's queries); DB_PREPARE_THRESHOLD
    sets the count, and 0 turns it off for poolers that cannot keep prepared statements."""
    assert _database_options(tmp_path) == {"server_side_binding": True, "prepare_threshold": 5}
    assert _database_options(tmp_path, DB_PREPARE_THRESHOLD="2")["prepare_threshold"] == 2
    assert _database_options(tmp_path, DB_PREPARE_THRESHOLD="0") == {}


@pytest.mark.django_db
def test_a_repeated_query_runs_prepared_on_postgresql(is_postgres):
    if not is_postgres:
        pytest.skip("prepared statements are PostgreSQL's")
    from django.contrib.auth.models import User
    from django.db import connection

    for _ in range(6):
        list(User.objects.filter(username="nobody-prepared"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("nobody" not in s and '"auth_user"."username" = $1' in s for s in prepared)
