"""Follow the README's Production section word for word on a fresh virtual environment
(issue 12: as written, workers lacked numpy, migrate made no roles, there was no first
administrator, gunicorn served no static files and signing in over http failed), with the
Single sign-on section's exports added: sign-in through a real OpenID Connect provider
(tests/oidc_provider) on HTTPS, its certificate from a throwaway private CA that the installed
processes trust as the README says (with DEBUG off Modelgate refuses an http issuer).

The commands come from the README itself (tests/readme.py), so the two cannot drift. What
differs from the README is only what cannot be true on a test machine: a throwaway
PostgreSQL database and the Redis of REDIS_URL instead of the hosts `db` and `redis`, local
artifact storage instead of an S3 bucket, a free port instead of 8000, the README's own
switches for trying it over plain HTTP, and the test provider's issuer, client secret and CA
instead of the examples. Slow (a pip install, minutes with pip's cache), so it
runs only with MODELGATE_INSTALL_TEST=1.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import certifi
import psycopg
import pytest

from governance.roles import ROLES
from tests.governance.oidc_support import (
    Provider,
    authorize_at_provider,
    running_provider,
    throwaway_tls,
)
from tests.live import Browser, free_port, stylesheets, wait_until_serving
from tests.readme import production, single_sign_on

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = secrets.token_urlsafe(16)

pytestmark = pytest.mark.skipif(
    not os.environ.get("MODELGATE_INSTALL_TEST"),
    reason="slow: installs the README's production setup in a fresh virtual environment; "
    "set MODELGATE_INSTALL_TEST=1 with DATABASE_URL=postgres://… (a user who may "
    "create databases) and REDIS_URL=redis://… to run it",
)


@dataclass
class Installation:
    base: str
    venv: Path
    env: dict[str, str]
    logs: Path
    provider: Provider
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, words: list[str], **kwargs: object) -> str:
        """One command of the README, with the fresh environment's programs."""
        result = subprocess.run(
            [str(self.venv / "bin" / words[0]), *words[1:]],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            **kwargs,
        )
        assert result.returncode == 0, f"{words}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result.stdout

    def start(self, words: list[str]) -> subprocess.Popen[bytes]:
        """A long-running command of the README, in a process group of its own (so that
        stopping it reaches its workers and nothing else)."""
        log = (self.logs / f"{words[0]}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [str(self.venv / "bin" / words[0]), *words[1:]],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.rglob("*.log"))
        )


def _servers() -> tuple[str, str]:
    database, redis = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database.startswith(("postgres://", "postgresql://")) or not redis:
        pytest.fail("MODELGATE_INSTALL_TEST needs DATABASE_URL=postgres://… and REDIS_URL=…")
    return database, redis


def _environment(database_url: str, redis_url: str, var_dir: Path, venv: Path) -> dict[str, str]:
    """The README's exports, then its plain-HTTP switches, with this machine's servers."""
    section = production()
    env = {
        name: value
        for name, value in os.environ.items()
        if name in ("HOME", "LANG", "TMPDIR") or name.startswith("PIP_")
    }
    env["PATH"] = f"{venv / 'bin'}:{os.environ['PATH']}"
    env.update(section.environment)
    assert env["DEBUG"] == "false" and env["SECRET_KEY"] == "..."
    assert env["AUDIT_ANCHOR"].startswith("s3://") and env["AUDIT_CHECKPOINT_KEY"] == "..."
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MODELGATE_VAR_DIR=str(var_dir),
        # no bucket here: the anchor is a file, a place the database cannot rewrite
        AUDIT_ANCHOR=str(var_dir.parent / "audit-anchor.jsonl"),
        AUDIT_CHECKPOINT_KEY=secrets.token_urlsafe(50),
    )
    if env.get("ARTIFACT_STORAGE") == "s3":  # no bucket here: the local store instead
        env["ARTIFACT_STORAGE"] = "local"
        for name in [n for n in env if n.startswith("ARTIFACT_S3_")]:
            del env[name]
    env.update(section.plain_http)
    return env


def _single_sign_on(provider: Provider, client_secret: str) -> dict[str, str]:
    """The Single sign-on section's exports, with the test provider for the example one."""
    env = single_sign_on().environment
    assert env["OIDC_OP_ISSUER"].startswith("https://") and env["OIDC_RP_CLIENT_SECRET"] == "..."
    # As the README says: the bundle in use (certifi's, or this machine's) plus the private CA
    # (pip, which reads the variable too, must still reach its index).
    bundle = provider.folder / "ca-bundle.pem"
    bundle.write_text(
        Path(os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where()).read_text()
        + "\n"
        + Path(str(provider.verify)).read_text()
    )
    env.update(
        OIDC_OP_ISSUER=provider.issuer,
        OIDC_RP_CLIENT_SECRET=client_secret,
        REQUESTS_CA_BUNDLE=str(bundle),
    )
    return env


@pytest.fixture(scope="module")
def installation() -> Iterator[Installation]:
    started = time.monotonic()
    server_url, redis_url = _servers()
    database = f"mg_install_{os.getpid()}"
    admin_url = urlunsplit(urlsplit(server_url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    # Under the system temp folder, beside the jobs' scratch folders: the model process must
    # still see this environment's libraries (it once saw nothing of /tmp). World-readable: a
    # root worker runs each model job as SANDBOX_USER (nobody), which must import
    # scikit-learn from this environment.
    root = Path(tempfile.mkdtemp(prefix="install-test-"))
    root.chmod(0o755)
    venv, logs = root / "venv", root / "logs"
    logs.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    install: Installation | None = None
    stack = ExitStack()
    try:
        # Registered as the README says (its client id; the callback at the address users
        # reach the site at); it migrates while pip installs.
        folder = logs / "oidc-provider"
        folder.mkdir(mode=0o700)  # its keys: root is world-readable for the sandbox
        client_secret = secrets.token_urlsafe(32)
        provider = stack.enter_context(
            running_provider(
                folder,
                client_id=single_sign_on().environment["OIDC_RP_CLIENT_ID"],
                client_secret=client_secret,
                redirect_uri=f"{base}/oidc/callback/",
                tls=throwaway_tls(folder),
            )
        )
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        env = _environment(
            urlunsplit(urlsplit(server_url)._replace(path=f"/{database}")),
            redis_url,
            root / "var",
            venv,
        )
        env.update(_single_sign_on(provider, client_secret))
        env["DJANGO_SUPERUSER_PASSWORD"] = ADMIN_PASSWORD
        install = Installation(base=base, venv=venv, env=env, logs=logs, provider=provider)
        for words in production().commands:
            if words[0] in ("gunicorn", "celery"):
                if "--bind" in words:
                    words = [*words]
                    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
                install.start(words)
            elif words[:3] == ["python", "manage.py", "createsuperuser"]:
                install.run([*words, "--noinput"])  # the password from DJANGO_SUPERUSER_PASSWORD
            else:
                install.run(words)
        assert any(w[:2] == ["gunicorn", "config.wsgi:application"] for w in production().commands)
        wait_until_serving(install.base, install.processes[0], timeout=120)
        provider.wait_until_ready()
        print(f"installed and serving in {time.monotonic() - started:.0f} s")
        yield install
    finally:
        if install is not None:
            install.stop()
        stack.close()  # the provider this fixture started
        if install is not None:
            print(install.log_tail())
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)
        print(f"the whole install test took {time.monotonic() - started:.0f} s")


def test_gunicorn_serves_a_styled_site(installation):
    browser = Browser(installation.base)
    page = browser.get("/login/")
    assert page.status == 200
    (css,) = stylesheets(page.text)
    assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", css), css  # cache-busted
    sheet = browser.get(css, **{"Accept-Encoding": "gzip"})
    assert sheet.status == 200
    assert sheet.headers["Content-Type"].startswith("text/css")
    assert sheet.headers.get("Content-Encoding") == "gzip"  # compressed by collectstatic
    assert "immutable" in sheet.headers["Cache-Control"]
    for script in re.findall(r'<script src="([^"]+)"', page.text):
        reply = browser.get(script)
        assert reply.status == 200 and "javascript" in reply.headers["Content-Type"], script


def test_the_first_administrator_signs_in_over_plain_http_and_finds_the_roles(installation):
    browser = Browser(installation.base)
    signed_in = browser.sign_in("admin", ADMIN_PASSWORD)
    assert (signed_in.status, signed_in.headers["Location"]) == (302, "/")
    assert browser.get("/").status == 200
    groups = browser.get("/admin/auth/group/")
    assert groups.status == 200
    assert all(f">{role}</a>" in groups.text for role in ROLES), groups.text[-2000:]


def test_the_api_docs_load_their_assets(installation):
    browser = Browser(installation.base)
    assert browser.sign_in("admin", ADMIN_PASSWORD).status == 302
    docs = browser.get("/api/docs/")
    assert docs.status == 200
    assets = stylesheets(docs.text) + re.findall(r'<script src="([^"]+)"', docs.text)
    assert any("swagger-ui-bundle" in a for a in assets), docs.text
    for asset in assets:
        reply = browser.get(asset.replace(installation.base, ""))
        assert reply.status == 200, asset
        assert re.search(r"css|javascript", reply.headers["Content-Type"]), asset


def test_a_worker_converts_an_uploaded_scikit_learn_model(installation):
    token = installation.run(
        ["python", "manage.py", "token_create", "admin", "--name", "install-test", "--days", "1"]
    ).strip()
    model_file = installation.logs.parent / "iris.joblib"
    installation.run(
        [
            "python",
            "-c",
            (
                "import sys, joblib; from sklearn.datasets import load_iris; "
                "from sklearn.ensemble import RandomForestClassifier as F; "
                "X, y = load_iris(return_X_y=True); "
                "joblib.dump(F(n_estimators=10, random_state=0).fit(X, y), sys.argv[1])"
            ),
            str(model_file),
        ]
    )
    api = Browser(installation.base)
    auth = {"Authorization": f"Bearer {token}"}

    def send(method: str, path: str, body: object, content_type: str = "application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = api.request(
            method, f"/api/v1/{path}", data, headers={**auth, "Content-Type": content_type}
        )
        assert reply.status in (200, 201), (path, reply.status, reply.text)
        return reply.json()

    columns = ["sl", "sw", "pl", "pw"]
    send("POST", "models/", {"name": "iris"})
    send(
        "POST",
        "models/iris/versions/",
        {
            "signature": {"inputs": [{"name": c, "type": "double"} for c in columns]},
            "input_example": [
                dict(zip(columns, row, strict=True))
                for row in ([5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3])
            ],
        },
    )
    artifact = send(
        "POST",
        "models/iris/versions/1/artifacts/?filename=iris.joblib",
        model_file.read_bytes(),
        "application/octet-stream",
    )
    assert artifact["media_type"] == "application/octet-stream"
    job = send("POST", "models/iris/versions/1/jobs/", {"kind": "convert_onnx"})
    deadline = time.monotonic() + 180
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1)
        job = api.request(
            "GET", f"/api/v1/models/iris/versions/1/jobs/{job['id']}/", headers=auth
        ).json()
    assert job["status"] == "succeeded", json.dumps(job, indent=1)[-6000:]
    files = api.request("GET", "/api/v1/models/iris/versions/1/artifacts/", headers=auth).json()
    assert any(f["format"] == "onnx" for f in files), files


def test_the_audit_log_is_anchored_outside_the_database_and_verifies(installation):
    checkpoint = json.loads(installation.run(["python", "manage.py", "audit_checkpoint"]))
    anchor = Path(installation.env["AUDIT_ANCHOR"]).read_text().splitlines()
    assert json.loads(anchor[-1])["sequence"] == checkpoint["sequence"]
    installation.run(["python", "manage.py", "verify_audit_log"])  # exit status 0


def test_single_sign_on_through_an_https_provider_grants_the_mapped_role(installation):
    """The README's Single sign-on exports on the installed gunicorn: discovery, the code
    exchange and the keys over HTTPS trusted through REQUESTS_CA_BUNDLE, and a group mapped
    by the README's command gives the new account its role."""
    group = "ml-platform-admins"
    words = {"GROUP": group, "ROLE": "admin", "ADMIN": "admin"}
    installation.run([words.get(word, word) for word in single_sign_on().group_mapping])
    installation.provider.profiles(dana={"groups": [group, "staff"]})
    browser = Browser(installation.base)
    name = installation.env["OIDC_PROVIDER_NAME"]
    assert f"Sign in with {name}</a>" in browser.get("/login/").text
    start = browser.get("/oidc/authenticate/")
    assert start.status == 302 and start.headers["Location"].startswith(
        installation.provider.issuer + "/authorize/"
    ), start.headers
    callback = authorize_at_provider(
        start.headers["Location"],
        "dana",
        f"{installation.base}/oidc/callback/",
        verify=installation.provider.verify,
    )
    signed_in = browser.get(callback.removeprefix(installation.base))
    assert (signed_in.status, signed_in.headers.get("Location")) == (302, "/"), (
        signed_in.status,
        signed_in.text[-2000:],
    )
    assert browser.get("/").status == 200
    # The admin role's audit right, and the change it audits, seen by dana herself.
    changes = browser.get("/api/v1/audit/events/?action=user.sso_roles_changed")
    assert changes.status == 200, changes.text[:500]
    (change,) = changes.json()["results"]
    assert (change["target_label"], change["details"]["added"], change["details"]["matched"]) == (
        "dana",
        ["admin"],
        [group],
    ), change
    assert browser.get("/admin/").status == 302  # a role, never staff
