"""A real OpenID Connect provider for the single sign-on tests (django-oauth-toolkit in a
subprocess, tests/oidc_provider/), its fixtures, and helpers that sign in through it."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import Group, User
from django.test import Client

from governance import sso
from governance.actors import Actor
from governance.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "modelgate-test"
CLIENT_SECRET = secrets.token_urlsafe(32)
REDIRECT_URI = "http://testserver/oidc/callback/"
# At the provider: dana is an ordinary user; erin's address is the local alice's, and root's
# the local superuser's (whose username root also is).
PROVIDER_USERS = {
    "dana": {"password": "dana-pw-4711", "email": "dana@idp.example", "first_name": "Dana"},
    "erin": {"password": "erin-pw-4711", "email": "alice@example.com"},
    "root": {"password": "root-pw-4711", "email": "root@example.com"},
}


@dataclass
class Provider:
    issuer: str
    folder: Path

    def profiles(self, **profiles: dict[str, object]) -> None:
        """Group memberships and e-mail verification the provider reports from now on."""
        (self.folder / "profiles.json").write_text(json.dumps(profiles))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    folder = tmp_path_factory.mktemp("oidc-provider")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (folder / "secret_key").write_text(secrets.token_urlsafe(40))
    port = free_port()
    provider = Provider(issuer=f"http://127.0.0.1:{port}/o", folder=folder)
    provider.profiles()
    env = {**os.environ, "OIDC_PROVIDER_DIR": str(folder), "OIDC_PROVIDER_ISSUER": provider.issuer,
           "OIDC_PROVIDER_ADDRESS": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT),
           "OIDC_PROVIDER_SETUP": json.dumps({
               "users": [{"username": name, **user} for name, user in PROVIDER_USERS.items()],
               "client": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                          "redirect_uri": REDIRECT_URI}})}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log_path = folder / "provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tests.oidc_provider"], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:  # bounded wait for the provider to migrate and listen
                if process.poll() is not None:
                    pytest.fail(f"The test provider exited:\n{log_path.read_text()}")
                try:
                    if requests.get(f"{provider.issuer}/.well-known/openid-configuration",
                                    timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"The test provider did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield provider
        finally:
            process.terminate()  # only the provider this fixture started
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def idp(oidc_provider: Provider, settings: object, roles: dict[str, Group]) -> Provider:
    """Modelgate configured for the test provider, through discovery."""
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_OP_ISSUER = oidc_provider.issuer
    settings.OIDC_RP_SCOPES = "openid email profile groups"
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    oidc_provider.profiles()
    return oidc_provider


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"]] = values.get("value") or ""


def _hidden_fields(page: str) -> dict[str, str]:
    form = _Form()
    form.feed(page)
    return form.fields


def provider_redirect(client: Client, username: str, next_url: str = "") -> str:
    """Start at Modelgate, sign in and consent at the provider like a browser; return the URL
    the provider sends the browser back to (Modelgate's callback with a code and a state)."""
    start = client.get("/oidc/authenticate/" + (f"?{urlencode({'next': next_url})}"
                                                if next_url else ""))
    assert start.status_code == 302
    browser = requests.Session()
    login = browser.get(start["Location"], timeout=10)  # → the provider's login form
    assert login.status_code == 200 and "/accounts/login/" in login.url
    consent = browser.post(login.url, timeout=10, headers={"Referer": login.url}, data={
        **_hidden_fields(login.text), "username": username,
        "password": PROVIDER_USERS[username]["password"]})
    assert consent.status_code == 200 and "/o/authorize/" in consent.url, consent.text[:500]
    answer = browser.post(consent.url, allow_redirects=False, timeout=10,
                          headers={"Referer": consent.url},
                          data={**_hidden_fields(consent.text), "allow": "Authorize"})
    assert answer.status_code == 302, answer.text[:500]
    assert answer.headers["Location"].startswith(REDIRECT_URI)
    return answer.headers["Location"]


def sign_in(client: Client, username: str) -> User | None:
    """The whole flow; the user Modelgate's session now holds, if any."""
    response = client.get(provider_redirect(client, username))
    assert response.status_code == 302
    return session_user(client)


def session_user(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def roles_of(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


@pytest.fixture
def mapped(roles: dict[str, Group], admin_user: User) -> Callable[..., None]:
    def mapping(**pairs: str) -> None:
        for idp_group, role in pairs.items():
            sso.idp_mapping_create(actor=Actor.system("cli", user=admin_user),
                                   idp_group=idp_group, role=roles[role])
    return mapping


