"""The README's least-privilege database role, run as written (with names of our own): the
owner migrates, the application role works and cannot rewrite the audit log even with the
triggers aside, and `manage.py check` warns about the owner but not about the application."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


def _readme_steps() -> tuple[list[str], str]:
    """The SQL statements run as a superuser, and the owner's psql statement after migrate."""
    text = (ROOT / "README.md").read_text()
    part = text[text.index("**A least-privilege database role.**") :]
    sql = re.search(r"```sql\n(.+?)\n```", part, re.S).group(1)
    shell = re.search(r"```sh\n(.+?)\n```", part, re.S).group(1)
    statements = [line for line in re.split(r";\s*\n|\n(?=\\connect)", sql + "\n") if line.strip()]
    (psql,) = [shlex.split(line) for line in shell.splitlines() if line.startswith("psql ")]
    return statements, psql[psql.index("-c") + 1]


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    with _connect("postgres") as admin:
        if not admin.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]:
            pytest.skip(
                "needs a PostgreSQL superuser as the test user: it creates and "
                "drops login roles of its own (CI runs as postgres)"
            )
    suffix = secrets.token_hex(5)
    names = {
        "modelgate_owner": f"mg_owner_{suffix}",
        "modelgate_app": f"mg_app_{suffix}",
        "modelgate": f"mg_lp_{suffix}",
        "owner-pw": secrets.token_hex(12),
        "app-pw": secrets.token_hex(12),
    }
    yield names
    with _connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {names['modelgate']} WITH (FORCE)")
        for role in (names["modelgate_app"], names["modelgate_owner"]):
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def _renamed(statement: str, names: dict[str, str]) -> str:
    pattern = re.compile("|".join(re.escape(k) for k in sorted(names, key=len, reverse=True)))
    return pattern.sub(lambda m: names[m.group(0)], statement)


def _connect(
    dbname: str, user: str | None = None, password: str | None = None
) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        dbname=dbname,
        user=user or db["USER"],
        password=password or db["PASSWORD"] or None,
        autocommit=True,
    )


def _url(names: dict[str, str], role: str) -> str:
    db = connection.settings_dict
    password = names["owner-pw" if role == "modelgate_owner" else "app-pw"]
    return (
        f"postgres://{names[role]}:{password}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{names['modelgate']}"
    )


def _manage(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "MODELGATE_VAR_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_readmes_least_privilege_role_runs_the_application(names, tmp_path):
    statements, after_migrate = _readme_steps()
    admin = _connect("postgres")
    try:
        for statement in statements:
            statement = _renamed(statement, names)
            if statement.startswith("\\connect"):
                admin.close()
                admin = _connect(statement.split()[1])
            else:
                admin.execute(statement)
    finally:
        admin.close()

    owner_url, app_url = _url(names, "modelgate_owner"), _url(names, "modelgate_app")
    migrated = _manage(owner_url, tmp_path, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    with _connect(names["modelgate"], names["modelgate_owner"], names["owner-pw"]) as owner:
        owner.execute(_renamed(after_migrate, names))
    # The owner is warned about, as documented; the application's role is not.
    assert "governance.W002" in _manage(owner_url, tmp_path, "check").stderr

    checked = _manage(app_url, tmp_path, "check")
    assert checked.returncode == 0 and "governance.W00" not in checked.stderr, checked.stderr
    work = _manage(
        app_url,
        tmp_path,
        "shell",
        "-c",
        (
            "from django.contrib.auth.models import User; from tests.factories import make_model; "
            "make_model(User.objects.create_superuser('lp-admin'), 'least-privilege')"
        ),
    )
    assert work.returncode == 0, work.stderr  # rows, sequences and the audit chain
    assert _manage(app_url, tmp_path, "audit_checkpoint").returncode == 0

    with _connect(names["modelgate"], names["modelgate_app"], names["app-pw"]) as app:
        # Refused by privileges, before the triggers (which say "append-only") are reached.
        for statement, refusal in (
            ("UPDATE governance_auditevent SET action = 'x'", "permission denied"),
            ("DELETE FROM governance_auditevent", "permission denied"),
            ("TRUNCATE governance_auditevent", "permission denied"),
            ("ALTER TABLE governance_auditevent DISABLE TRIGGER USER", "must be owner"),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refusal):
                app.execute(statement)
        assert app.execute("SELECT count(*) FROM governance_auditevent").fetchone()[0] > 0
