"""Security review of single sign-on: attacks on account matching, role mapping, token
validation and the callback. Each test states the expected (safe) behaviour; a failing test is
a defect. The provider, its fixtures and helpers: tests/governance/oidc_support.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth.models import Group, Permission, User
from django.db import connection, transaction
from django.test import Client, override_settings

from core.models import AuditEvent
from core.permissions import Perm
from governance import access, sso
from governance.models import ExternalIdentity
from governance.oidc import OidcBackend
from governance.sso import SsoClaims, SsoRefused
from tests.factories import UserFactory, actor_for, make_model
from tests.governance.oidc_support import (
    CLIENT_ID,
    events,
    provider_redirect,
    roles_of,
    session_user,
    sign_in,
)

ISSUER = "https://idp.test/realm"


def claims(**values: object) -> SsoClaims:
    return SsoClaims.from_claims({"iss": ISSUER, "sub": "sub-1", **values})


@pytest.fixture
def offline_idp(settings, roles):
    """Single sign-on on, with explicit endpoints that nobody serves (no discovery)."""
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "s3cret"
    settings.OIDC_OP_ISSUER = ISSUER
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "https://127.0.0.1:9/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = "https://127.0.0.1:9/token"
    settings.OIDC_OP_USER_ENDPOINT = "https://127.0.0.1:9/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = "https://127.0.0.1:9/jwks"
    settings.OIDC_TIMEOUT = 1
    return settings


# --- Account matching ---------------------------------------------------------------------------


def test_email_linking_never_reaches_a_modelgate_administrator_by_role(roles, data_scientist):
    """The admin role makes an account a Modelgate administrator (require_admin) as much as
    superuser does; linking it on an e-mail address hands that to the IdP account."""
    data_scientist.groups.add(roles["admin"])
    user = sso.sso_sign_in(
        claims=claims(email="alice@example.com", email_verified=True, preferred_username="erin")
    )
    assert user.pk != data_scientist.pk
    assert not ExternalIdentity.objects.filter(user=data_scientist).exists()


def _role(user: User, roles: dict[str, Group], admin: User) -> None:
    user.groups.add(roles["viewer"])


def _any_group(user: User, roles: dict[str, Group], admin: User) -> None:
    user.groups.add(Group.objects.create(name="project-x"))


def _model_grant(user: User, roles: dict[str, Group], admin: User) -> None:
    access.grant_add(
        actor=actor_for(admin),
        registered_model=make_model(admin, "credit"),
        perm=Perm.VIEW,
        user=user,
    )


def _own_permission(user: User, roles: dict[str, Group], admin: User) -> None:
    user.user_permissions.add(Permission.objects.get(codename="view_registeredmodel"))


def _staff(user: User, roles: dict[str, Group], admin: User) -> None:
    User.objects.filter(pk=user.pk).update(is_staff=True)


@pytest.mark.parametrize("privilege", [_role, _any_group, _model_grant, _own_permission, _staff])
def test_email_links_only_a_plain_account(roles, admin_user, privilege):
    """README: a verified address links only an account with nothing to hand over: no group
    (so no role), no permission of its own, no per-model grant, not staff or superuser. The
    same account without the privilege links (the control)."""
    local = UserFactory(username="olivia", email="Olivia@Example.com")
    privilege(local, roles, admin_user)
    user = sso.sso_sign_in(
        claims=claims(email="olivia@example.com", email_verified=True, preferred_username="olivia")
    )
    assert user.pk != local.pk and user.username.startswith("olivia-")
    assert not ExternalIdentity.objects.filter(user=local).exists()

    plain = UserFactory(username="pat", email="pat@example.com")
    linked = sso.sso_sign_in(
        claims=SsoClaims.from_claims(
            {"iss": ISSUER, "sub": "sub-2", "email": "PAT@example.com", "email_verified": True}
        )
    )
    assert linked.pk == plain.pk


def test_sso_never_reaches_an_account_made_staff_or_superuser_after_linking(roles):
    """README: 'staff and superuser accounts are never reached through single sign-on at
    all'. Only linking checks it: once linked, promoting the account leaves the IdP in
    control of a superuser."""
    first = sso.sso_sign_in(claims=claims(preferred_username="dana"))
    for flags in (
        {"is_staff": True, "is_superuser": False},
        {"is_staff": False, "is_superuser": True},
    ):
        User.objects.filter(pk=first.pk).update(**flags)
        with pytest.raises(SsoRefused) as refused:
            sso.sso_sign_in(claims=claims(preferred_username="dana"))
        assert refused.value.reason == "privileged"


def test_a_linked_account_given_the_admin_role_locally_is_refused(roles, mapped):
    """An administrator made the account an administrator in Modelgate: that is a local
    decision the provider must not inherit. Through a mapping of the admin role the provider
    decides it (an administrator chose so), and the account signs in."""
    user = sso.sso_sign_in(claims=claims(preferred_username="dana"))
    user.groups.add(roles["admin"])
    with pytest.raises(SsoRefused) as refused:
        sso.sso_sign_in(claims=claims(preferred_username="dana"))
    assert refused.value.reason == "privileged"

    mapped(**{"mg-admins": "admin"})
    assert sso.sso_sign_in(claims=claims(preferred_username="dana", groups=["mg-admins"])) == user
    assert roles_of(user) == {"admin"}
    # Out of the group: the mapping takes the role away, and the account is plain again.
    assert roles_of(sso.sso_sign_in(claims=claims(preferred_username="dana"))) == set()


def test_a_privileged_account_is_refused_and_audited_through_the_whole_flow(idp):
    client = Client()
    user = sign_in(client, "dana")
    User.objects.filter(pk=user.pk).update(is_staff=True)

    assert sign_in(Client(), "dana") is None
    assert events("auth.sso_failed")[-1].details["reason"] == "privileged"


def test_a_deactivated_local_account_is_not_replaced_by_a_fresh_one(roles, data_scientist):
    """An administrator deactivated alice; her verified address at the provider must not
    give her a new, active account (with whatever roles the groups map to), also with
    linking switched off."""
    User.objects.filter(pk=data_scientist.pk).update(is_active=False)
    for link in (True, False):
        with override_settings(OIDC_LINK_VERIFIED_EMAIL=link), pytest.raises(SsoRefused) as refused:
            sso.sso_sign_in(
                claims=claims(
                    email="ALICE@example.com", email_verified=True, preferred_username="alice"
                )
            )
        assert refused.value.reason == "inactive"
    assert User.objects.filter(is_active=True, username__startswith="alice").count() == 0
    assert not ExternalIdentity.objects.exists()


@pytest.mark.parametrize("name", ["ｒｏｏｔ", "r\u043e\u043et", "Root", "ro\u0301ot"])
def test_a_new_username_never_normalises_to_an_existing_one(roles, admin_user, name):
    """Django normalises usernames with NFKC (User.clean, create_user, the login form);
    'ｒｏｏｔ' (full-width) is shown beside 'root' and reads as the superuser in the audit
    log and the admin. Cyrillic look-alikes and combining accents are no better: new names
    are ASCII."""
    user = sso.sso_sign_in(claims=claims(preferred_username=name))
    assert user.username.isascii() and user.username == User.normalize_username(user.username)
    assert user.username.casefold() != "root"
    assert user.username.casefold().startswith(("root-", "r__t"))


@pytest.mark.postgres
@pytest.mark.parametrize("look_alike", ["alice@ma\u0131l.example", "alice@mai\u017f.example"])
def test_a_unicode_case_collision_in_the_email_never_links(roles, data_scientist, look_alike):
    """On PostgreSQL iexact is UPPER(a) = UPPER(b): 'maıl' (dotless i, U+0131) upper-cases
    to 'MAIL', so whoever owns the look-alike domain mail.example's IDN twin and has that
    address verified at the provider is linked to alice's account; the long s (U+017F) also
    upper-cases to 'S' (and casefolds to 's', so casefold alone is no cure)."""
    data_scientist.groups.clear()  # a plain account, which a real match would link
    User.objects.filter(pk=data_scientist.pk).update(email="alice@mail.example")
    if "\u017f" in look_alike:
        User.objects.filter(pk=data_scientist.pk).update(email="alice@mais.example")
    user = sso.sso_sign_in(
        claims=claims(email=look_alike, email_verified=True, preferred_username="mallory")
    )
    assert user.pk != data_scientist.pk
    # ... and a deactivated alice is not taken for the look-alike's owner either.
    User.objects.filter(pk=data_scientist.pk).update(is_active=False)
    other = sso.sso_sign_in(
        claims=SsoClaims.from_claims(
            {"iss": ISSUER, "sub": "sub-2", "email": look_alike, "email_verified": True}
        )
    )
    assert other.pk not in (data_scientist.pk, user.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_username_taken_by_a_simultaneous_sign_in_gets_a_suffix_not_a_500():
    """Two first sign-ins with the same preferred_username: each finds the name free, and
    the second insert meets the first's on the unique index. Made deterministic: 'dana' is
    inserted in an open transaction, the sign-in (its own connection) checks, inserts and
    waits on the index; the commit turns its insert into an IntegrityError."""
    outcome: dict[str, object] = {}

    def sign_in_now() -> None:
        try:
            outcome["user"] = sso.sso_sign_in(claims=claims(preferred_username="dana"))
        except Exception as exc:  # noqa: BLE001 - the outcome is the assertion
            outcome["error"] = exc
        finally:
            connection.close()

    with transaction.atomic():
        User.objects.create(username="dana")
        thread = threading.Thread(target=sign_in_now)
        thread.start()
        deadline = time.monotonic() + 30
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:  # until the sign-in waits on our row
                # Within a transaction pg_stat_activity is a snapshot taken at first use.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the sign-in never waited on the uncommitted username")
    thread.join(timeout=30)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["user"].username.startswith("dana-")
    assert ExternalIdentity.objects.get().user == outcome["user"]


# --- Role mapping ---------------------------------------------------------------------------------


def _admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _rename(client: Client, group: Group, name: str) -> object:
    return client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": name, "permissions": list(group.permissions.values_list("pk", flat=True))},
    )


def test_a_role_group_cannot_be_renamed(roles, admin_user, mapped):
    """Renaming the role group a mapping names (admin → Groups) changed what the mapping
    grants, and no event recorded it. A role's name is read-only now."""
    mapped(**{"mg-viewers": "viewer"})
    client = _admin_client(admin_user)
    page = client.get(f"/admin/auth/group/{roles['viewer'].pk}/change/")
    assert page.status_code == 200 and b'name="name"' not in page.content

    response = _rename(client, roles["viewer"], "renamed-viewer")

    assert response.status_code == 302
    roles["viewer"].refresh_from_db()
    assert roles["viewer"].name == "viewer"


def test_renaming_another_group_is_audited_and_no_group_takes_a_role_name(roles, admin_user):
    group = Group.objects.create(name="project-x")
    client = _admin_client(admin_user)

    assert _rename(client, group, "project-y").status_code == 302

    [renamed] = AuditEvent.objects.filter(action="group.renamed")
    assert renamed.actor_id == admin_user.pk
    assert renamed.details == {"group": "project-y", "from": "project-x", "to": "project-y"}
    roles["auditor"].delete()  # even a role that is missing is migrate's to create
    page = _rename(client, group, "auditor")
    assert page.status_code == 200 and b"role" in page.content
    group.refresh_from_db()
    assert group.name == "project-y"


def test_a_mapping_never_grants_a_group_that_is_no_role(roles, admin_user, mapped):
    """README: 'a mapping can only name a role'. A role group renamed behind the admin's back
    (manage.py shell) keeps its mapping, whose role check ran when it was saved; sign-in must
    not hand the group out (an administrator may have given it any permission)."""
    mapped(**{"mg-viewers": "viewer", "mg-reviewers": "reviewer"})
    Group.objects.filter(pk=roles["viewer"].pk).update(name="renamed-viewer")
    user = sso.sso_sign_in(
        claims=claims(preferred_username="dana", groups=["mg-viewers", "mg-reviewers"])
    )
    assert roles_of(user) == {"reviewer"}


def test_the_mapping_admin_needs_a_csrf_token(roles, admin_user):
    """Sound: the admin's add form refuses a cross-site POST."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(
        "/admin/governance/idpgroupmapping/add/", {"idp_group": "mg", "role": roles["admin"].pk}
    )
    assert response.status_code == 403
    assert not sso.IdpGroupMapping.objects.exists()


def test_group_matching_is_exact(roles, mapped):
    """Sound: prefix, case, spaces, unicode look-alikes and NFKC forms grant nothing."""
    mapped(**{"mg-admin": "admin"})
    user = sso.sso_sign_in(
        claims=claims(
            preferred_username="dana",
            groups=[
                "mg-admin ",
                "MG-ADMIN",
                "mg-admin-x",
                "mg\u2010admin",
                "ｍｇ-admin",
                "mg-adm",
                "mg-admin\u200b",
                ["mg-admin"],
                {"mg-admin": 1},
            ],
        )
    )
    assert roles_of(user) == set()
    assert not user.is_staff and not user.is_superuser


# --- Token validation (the backend, with the provider's key) --------------------------------------

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
_PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _jwk(alg: str | None) -> jwt.PyJWK:
    """The provider's key as its JWKS lists it; many providers give no "alg"."""
    data = {
        **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_KEY.public_key())),
        "kid": "k1",
        "use": "sig",
    }
    return jwt.PyJWK({**data, "alg": alg} if alg else data)


def _payload(**changes: object) -> dict[str, object]:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "sub": "sub-1",
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": "n-1",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _backend(alg: str | None) -> OidcBackend:
    backend = OidcBackend()
    backend._configure()
    backend.retrieve_matching_jwk = lambda token: _jwk(alg)  # the JWKS holds the real key
    return backend


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS256", "PS384", "PS512"])
@pytest.mark.parametrize("alg_in_jwks", [True, False])
def test_every_accepted_rsa_signing_algorithm_verifies_a_good_token(offline_idp, alg, alg_in_jwks):
    """settings accept PS256/PS384/PS512, but the library only fetches the JWKS for algorithms
    starting with RS or ES; for PS* it verifies with the client secret, so no token ever
    verified. A JWK without "alg" is RS256 to PyJWT, which refused a PS256 token with it."""
    offline_idp.OIDC_RP_SIGN_ALGO = alg
    token = jwt.encode(_payload(), _PEM, algorithm=alg, headers={"kid": "k1"})
    backend = _backend(alg if alg_in_jwks else None)
    assert backend.verify_token(token, nonce="n-1")["sub"] == "sub-1"
    # The configured algorithm only: an RS256 token under PS256 (same key) is refused.
    other = "RS256" if alg != "RS256" else "PS256"
    forged = jwt.encode(_payload(), _PEM, algorithm=other, headers={"kid": "k1"})
    with pytest.raises(SsoRefused):
        backend.verify_token(forged, nonce="n-1")


def test_a_jwks_key_of_another_type_is_refused(offline_idp):
    """The configured algorithm needs an RSA key; an EC key from the JWKS verifies nothing."""
    offline_idp.OIDC_RP_SIGN_ALGO = "PS256"
    backend = _backend("PS256")
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    backend.retrieve_matching_jwk = lambda token: jwt.PyJWK(
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key)), "kid": "k1"}
    )
    token = jwt.encode(_payload(), _PEM, algorithm="PS256", headers={"kid": "k1"})
    with pytest.raises(SsoRefused):
        backend.verify_token(token, nonce="n-1")


def _forged(case: str) -> str:
    if case == "alg_none":
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
        return f"{header}.{_b64(json.dumps(_payload()).encode())}."
    if case == "hs256_with_public_key":
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        body = _b64(json.dumps(_payload()).encode())
        signature = hmac.new(_PUBLIC_PEM, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"
    changes = {
        "wrong_audience": {"aud": "other-client"},
        "wrong_issuer": {"iss": "https://evil.test/realm"},
        "expired": {"exp": int(time.time()) - 3600},
        "no_exp": {"exp": None},
        "no_iat": {"iat": None},
        "no_aud": {"aud": None},
        "wrong_nonce": {"nonce": "n-2"},
        "no_nonce": {"nonce": None},
        "future_iat": {"iat": int(time.time()) + 3600},
        "many_audiences_no_azp": {"aud": ["other-client", CLIENT_ID]},
        "many_audiences_other_azp": {"aud": ["other-client", CLIENT_ID], "azp": "other-client"},
    }[case]
    return jwt.encode(_payload(**changes), _PEM, algorithm="RS256", headers={"kid": "k1"})


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "hs256_with_public_key",
        "wrong_audience",
        "wrong_issuer",
        "expired",
        "no_exp",
        "no_iat",
        "no_aud",
        "wrong_nonce",
        "no_nonce",
        "future_iat",
        "many_audiences_no_azp",
        "many_audiences_other_azp",
    ],
)
def test_forged_id_tokens_are_refused(offline_idp, case):
    """Sound checks: each forged or mis-addressed ID token is refused."""
    with pytest.raises(Exception) as raised:
        _backend("RS256").verify_token(_forged(case), nonce="n-1")
    assert raised.type.__name__ in ("SsoRefused", "SuspiciousOperation")


def test_an_id_token_authorized_for_another_client_is_refused(offline_idp):
    """OIDC Core 3.1.3.7 (5): if azp is present it should be this client; only the
    several-audiences case is checked."""
    token = jwt.encode(_payload(azp="other-client"), _PEM, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(SsoRefused):
        _backend("RS256").verify_token(token, nonce="n-1")


# --- The callback and the redirect ---------------------------------------------------------------


def test_a_cross_site_get_to_the_callback_does_not_log_the_user_out(offline_idp, data_scientist):
    """Logging out is POST-only (CSRF-protected); the callback's error branch logs out on a
    plain GET any page can trigger with <img src=/oidc/callback/?error=x>."""
    client = Client()
    client.force_login(data_scientist)
    response = client.get("/oidc/callback/?error=access_denied")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert session_user(client) == data_scientist
    assert AuditEvent.objects.get(action="auth.sso_failed").details["reason"] == "provider_error"


def test_an_error_answer_uses_up_its_state(offline_idp):
    """The provider's error for a started sign-in forgets that sign-in's state, so the same
    state cannot complete later; other started sign-ins are kept."""
    client = Client()
    client.get("/oidc/authenticate/")
    client.get("/oidc/authenticate/")
    first, second = list(client.session["oidc_states"])
    client.get(f"/oidc/callback/?error=access_denied&state={first}")
    assert list(client.session["oidc_states"]) == [second]


@pytest.mark.parametrize(
    "query",
    [
        "code=a&code=b&state=x&state=y",
        "code=%00&state=%00",
        "code=a&state=" + "s" * 20000,
        "code=" + "c" * 20000 + "&state=VALID",
        "state=VALID&code=a&state=VALID",
        "code=a%00b&state=VALID",
        "error=x&state=VALID",
        "error=%00&state=%00",
        "error=x&error=&state=VALID",
        "code=&state=VALID",
        "code=a&state=",
        "state=VALID&code=%ff%fe",
    ],
)
def test_malformed_callbacks_are_never_a_5xx(offline_idp, query):
    client = Client(raise_request_exception=False)
    start = client.get("/oidc/authenticate/?next=/models/")
    assert start.status_code == 302
    state = next(iter(client.session["oidc_states"]))
    response = client.get("/oidc/callback/?" + query.replace("VALID", state))
    assert response.status_code < 500
    assert session_user(client) is None


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "http:/\\/evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_never_leaves_the_site(offline_idp, next_url):
    """Sound: the library keeps only a local next (url_has_allowed_host_and_scheme)."""
    client = Client()
    client.get("/oidc/authenticate/", {"next": next_url})
    assert client.session.get("oidc_login_next") is None


def test_full_flow_rotates_the_session_and_keeps_next_local(idp):
    """Sound: the session key changes at sign-in (no fixation) and next stays local."""
    client = Client()
    callback = provider_redirect(client, "dana", next_url="https://evil.example/")
    before = client.session.session_key
    response = client.get(callback)
    assert response.status_code == 302 and response["Location"] == "/"
    assert session_user(client) is not None and client.session.session_key != before


def test_the_next_page_is_used_once(idp):
    """The next page is forgotten after the sign-in it belonged to."""
    client = Client()
    response = client.get(provider_redirect(client, "dana", next_url="/models/"))
    assert response["Location"] == "/models/"
    assert "oidc_login_next" not in client.session
