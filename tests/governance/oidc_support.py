"""A real OpenID Connect provider for the single sign-on tests (django-oauth-toolkit in a
subprocess, tests/oidc_provider/), its fixtures, and helpers that sign in through it."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.contrib.auth.models import Group, User
from django.test import Client

from core.actors import Actor
from core.models import AuditEvent
from governance import sso
from tests.live import free_port

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
    process: subprocess.Popen[bytes]
    verify: str | bool = True  # requests' verify= for the provider: True, or a CA file

    def profiles(self, **profiles: dict[str, object]) -> None:
        """Group memberships and e-mail verification the provider reports from now on."""
        (self.folder / "profiles.json").write_text(json.dumps(profiles))

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Bounded wait for the provider to migrate and listen; fail if it exits."""
        log = self.folder / "provider.log"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"The test provider exited:\n{log.read_text()}")
            try:
                if requests.get(
                    f"{self.issuer}/.well-known/openid-configuration", timeout=2, verify=self.verify
                ).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"The test provider did not start:\n{log.read_text()}")
            time.sleep(0.1)


@dataclass(frozen=True)
class Tls:
    ca: Path  # the certificate authority's certificate, what clients are told to trust
    certfile: Path  # the server's certificate for 127.0.0.1 and localhost, signed by it
    keyfile: Path


def throwaway_tls(folder: Path) -> Tls:
    """A private certificate authority and a server certificate it signed, valid for a day:
    what an operator's in-house provider looks like to Modelgate."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: x509.Name,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        *extensions: tuple[object, bool],
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate(
        name("Modelgate test CA"),
        name("Modelgate test CA"),
        ca_key,
        ca_key,
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        ),
    )
    server = certificate(
        name("127.0.0.1"),
        ca.subject,
        server_key,
        ca_key,
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            False,
        ),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    )
    tls = Tls(
        ca=folder / "ca.pem", certfile=folder / "server.pem", keyfile=folder / "server-key.pem"
    )
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.certfile.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    tls.keyfile.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


@contextmanager
def running_provider(
    folder: Path, *, client_id: str, client_secret: str, redirect_uri: str, tls: Tls | None = None
) -> Iterator[Provider]:
    """The provider in a subprocess with PROVIDER_USERS and one confidential client, over
    HTTPS with `tls`. Yields once started (call wait_until_ready before use, so that its
    start can overlap other work); stops it afterwards."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "secret_key").write_text(secrets.token_urlsafe(40))
    (folder / "profiles.json").write_text("{}")
    port = free_port()
    issuer = f"{'https' if tls else 'http'}://127.0.0.1:{port}/o"
    env = {
        **os.environ,
        "OIDC_PROVIDER_DIR": str(folder),
        "OIDC_PROVIDER_ISSUER": issuer,
        "OIDC_PROVIDER_ADDRESS": f"127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
        "OIDC_PROVIDER_SETUP": json.dumps(
            {
                "users": [{"username": name, **user} for name, user in PROVIDER_USERS.items()],
                "client": {
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "redirect_uri": redirect_uri,
                },
            }
        ),
    }
    if tls:
        env.update(OIDC_PROVIDER_CERTFILE=str(tls.certfile), OIDC_PROVIDER_KEYFILE=str(tls.keyfile))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    with (folder / "provider.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc_provider"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield Provider(
                issuer=issuer, folder=folder, process=process, verify=str(tls.ca) if tls else True
            )
        finally:
            process.terminate()  # only the provider started here
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(
        tmp_path_factory.mktemp("oidc-provider"),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
    ) as provider:
        provider.wait_until_ready()
        yield provider


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
    start = client.get(
        "/oidc/authenticate/" + (f"?{urlencode({'next': next_url})}" if next_url else "")
    )
    assert start.status_code == 302
    return authorize_at_provider(start["Location"], username, REDIRECT_URI)


def authorize_at_provider(
    authorize_url: str, username: str, redirect_uri: str, verify: str | bool = True
) -> str:
    """A browser at the provider: from the authorization URL Modelgate sent it to, through
    the login form and the consent form; returns where the provider sends it back to."""
    browser = requests.Session()
    # verify on each request: REQUESTS_CA_BUNDLE in the environment beats a session's own
    login = browser.get(authorize_url, timeout=10, verify=verify)  # → the provider's login form
    assert login.status_code == 200 and "/accounts/login/" in login.url
    consent = browser.post(
        login.url,
        timeout=10,
        verify=verify,
        headers={"Referer": login.url},
        data={
            **_hidden_fields(login.text),
            "username": username,
            "password": PROVIDER_USERS[username]["password"],
        },
    )
    assert consent.status_code == 200 and "/o/authorize/" in consent.url, consent.text[:500]
    answer = browser.post(
        consent.url,
        allow_redirects=False,
        timeout=10,
        verify=verify,
        headers={"Referer": consent.url},
        data={**_hidden_fields(consent.text), "allow": "Authorize"},
    )
    assert answer.status_code == 302, answer.text[:500]
    assert answer.headers["Location"].startswith(redirect_uri)
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
            sso.idp_mapping_create(
                actor=Actor.system("cli", user=admin_user), idp_group=idp_group, role=roles[role]
            )

    return mapping
