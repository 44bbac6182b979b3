"""Single sign-on against a real OpenID Connect provider, never a mock of the protocol.

The session starts django-oauth-toolkit's provider (tests/oidc_provider, its own Django
project, SQLite file and freshly generated RSA key) as a subprocess on a free port. Each
sign-in is the whole authorization-code flow: Modelgate's /oidc/authenticate/ redirects to the
provider, whose login and consent forms are posted with requests; the provider redirects back
with a code, and Modelgate's callback exchanges it at the provider's token endpoint, checks the
RS256 ID token against the provider's JWKS, asks userinfo and logs the user in.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from io import StringIO
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client

from core.actors import Actor
from core.errors import Conflict, Forbidden, ValidationFailed
from governance import sso
from governance.models import ExternalIdentity, IdpGroupMapping
from tests.governance.oidc_support import (
    ROOT,
    events,
    provider_redirect,
    roles_of,
    session_user,
    sign_in,
)
from tests.live import free_port


def test_sign_in_sets_mapped_roles_and_a_changed_claim_removes_one(idp, mapped, roles):
    mapped(**{"mg-reviewers": "reviewer", "mg-viewers": "viewer", "mg-admin": "admin"})
    # A prefix, a longer value, another case and an unmapped group grant nothing.
    idp.profiles(
        dana={
            "groups": [
                "mg-reviewers",
                "mg-viewers",
                "mg-admin-team",
                "mg-adm",
                "MG-ADMIN",
                "unmapped",
            ]
        }
    )

    user = sign_in(Client(), "dana")

    assert user is not None and user.username == "dana" and user.email == "dana@idp.example"
    assert user.first_name == "Dana" and not user.has_usable_password()
    assert roles_of(user) == {"reviewer", "viewer"}
    assert not user.is_staff and not user.is_superuser
    identity = ExternalIdentity.objects.get(user=user)
    assert identity.issuer == idp.issuer and identity.subject
    [created] = events("user.created")
    assert created.actor_id == user.pk and created.details["via"] == "oidc"
    [granted] = events("user.sso_roles_changed")
    assert granted.actor_id == user.pk and granted.channel == "web"
    assert granted.details["added"] == ["reviewer", "viewer"] and granted.details["removed"] == []
    assert granted.details["values"] == [
        "mg-reviewers",
        "mg-viewers",
        "mg-admin-team",
        "mg-adm",
        "MG-ADMIN",
        "unmapped",
    ]
    assert granted.details["claim"] == "groups" and granted.details["issuer"] == idp.issuer
    # A role no mapping names is the administrators' to give, and single sign-on leaves it.
    user.groups.add(roles["data scientist"])

    idp.profiles(dana={"groups": ["mg-viewers"]})
    again = sign_in(Client(), "dana")

    assert again.pk == user.pk and ExternalIdentity.objects.count() == 1
    assert roles_of(again) == {"viewer", "data scientist"}
    removed = events("user.sso_roles_changed")[-1]
    assert removed.details["added"] == [] and removed.details["removed"] == ["reviewer"]
    assert removed.details["values"] == ["mg-viewers"]

    sign_in(Client(), "dana")  # nothing changed: no event
    assert len(events("user.sso_roles_changed")) == 2


def test_signed_in_user_reaches_the_next_page_and_logs_out(idp):
    client = Client()
    response = client.get(provider_redirect(client, "dana", next_url="/models/"))
    assert response.status_code == 302 and response["Location"] == "/models/"
    assert client.get("/models/").status_code == 200

    assert client.post("/logout/").status_code == 302
    assert session_user(client) is None
    assert client.get("/models/").status_code == 302  # to the login page


def test_explicit_endpoints_work_without_discovery(idp, settings):
    document = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = document["authorization_endpoint"]
    settings.OIDC_OP_TOKEN_ENDPOINT = document["token_endpoint"]
    settings.OIDC_OP_USER_ENDPOINT = document["userinfo_endpoint"]
    settings.OIDC_OP_JWKS_ENDPOINT = document["jwks_uri"]
    settings.OIDC_OP_ISSUER = idp.issuer + "/elsewhere"  # no discovery document there

    assert sign_in(Client(), "dana") is None  # the ID token names the real issuer
    assert events("auth.sso_failed")[-1].details["reason"] == "token_InvalidIssuerError"

    settings.OIDC_OP_ISSUER = idp.issuer
    user = sign_in(Client(), "dana")
    assert user is not None and user.username == "dana"


# --- Refusals ---------------------------------------------------------------------------------


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode(query)}"


@pytest.mark.parametrize(
    "case",
    [
        "tampered_state",
        "expired_state",
        "replayed",
        "forged_code",
        "provider_error",
        "wrong_algorithm",
    ],
)
def test_callback_refuses_and_audits(idp, settings, case):
    client = Client()
    callback = provider_redirect(client, "dana")
    expected = {
        "tampered_state": "state_unknown",
        "expired_state": "state_expired",
        "replayed": "state_unknown",
        "forged_code": "provider_response",
        "provider_error": "provider_error",
        "wrong_algorithm": "token_algorithm",
    }[case]
    if case == "tampered_state":
        callback = _with_query(callback, state="forged-" + secrets.token_urlsafe(8))
    elif case == "expired_state":
        settings.OIDC_STATE_MAX_AGE = 0
    elif case == "replayed":
        assert client.get(callback).status_code == 302 and session_user(client) is not None
        client = Client()  # whoever saw the URL replays it
    elif case == "forged_code":
        callback = _with_query(callback, code="forged-" + secrets.token_urlsafe(8))
    elif case == "provider_error":
        callback = _with_query(callback, error="access_denied")
    elif case == "wrong_algorithm":
        settings.OIDC_RP_SIGN_ALGO = "RS384"

    response = client.get(callback)

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert session_user(client) is None
    page = client.get("/login/")
    assert b"Single sign-on failed" in page.content
    failures = events("auth.sso_failed")
    assert failures and failures[-1].details["reason"] == expected
    if case != "replayed":
        assert not User.objects.filter(username="dana").exists()


def test_an_unreachable_provider_is_a_message_not_an_error(idp, settings):
    settings.OIDC_OP_ISSUER = f"http://127.0.0.1:{free_port()}/o"  # nothing listens there
    client = Client()
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert b"Single sign-on failed" in client.get("/login/").content
    assert events("auth.sso_failed")[-1].details["reason"] == "provider_unreachable"


def test_deactivated_account_is_refused_and_its_session_ends(idp):
    client = Client()
    user = sign_in(client, "dana")
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert client.get("/models/").status_code == 302  # the old session no longer counts
    assert sign_in(Client(), "dana") is None
    assert events("auth.sso_failed")[-1].details["reason"] == "inactive"


def test_creating_accounts_can_be_switched_off(idp, settings):
    settings.OIDC_CREATE_USER = False
    assert sign_in(Client(), "dana") is None
    assert events("auth.sso_failed")[-1].details["reason"] == "no_account"
    assert not User.objects.filter(username="dana").exists()


# --- Account matching -------------------------------------------------------------------------


def test_unverified_email_never_links_a_local_account(idp, data_scientist):
    idp.profiles(erin={"email_verified": False, "groups": []})

    user = sign_in(Client(), "erin")

    assert user is not None and user.pk != data_scientist.pk
    assert user.username == "erin" and user.email == ""  # an unverified address is not kept
    assert not ExternalIdentity.objects.filter(user=data_scientist).exists()
    assert roles_of(data_scientist) == {"data scientist"}


def test_verified_email_links_a_plain_local_account(idp, data_scientist):
    data_scientist.groups.clear()  # a role would keep it from linking (test_oidc_attacks)
    idp.profiles(erin={"email_verified": True})

    user = sign_in(Client(), "erin")

    assert user.pk == data_scientist.pk
    [linked] = events("user.sso_linked")
    assert linked.actor_id == data_scientist.pk and linked.details["email"] == "alice@example.com"
    assert not events("user.created")


def test_verified_email_never_links_a_superuser(idp, admin_user):
    idp.profiles(root={"email_verified": True})

    user = sign_in(Client(), "root")

    assert user.pk != admin_user.pk and user.username.startswith("root-")
    assert not user.is_superuser and not user.is_staff
    assert user.email == ""  # the superuser's address stays the superuser's alone
    assert not ExternalIdentity.objects.filter(user=admin_user).exists()


# --- Off, and local accounts ------------------------------------------------------------------


def test_without_configuration_there_is_no_button_and_oidc_urls_are_404(settings, roles):
    settings.OIDC_RP_CLIENT_ID = ""
    client = Client()
    assert b"Sign in with" not in client.get("/login/").content
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


def test_with_sso_on_the_login_page_offers_it_and_passwords_still_work(idp, data_scientist):
    client = Client()
    page = client.get("/login/?next=/models/").content.decode()
    # A plain link: no script, so a strict Content-Security-Policy holds.
    assert (
        '<a class="button" href="/oidc/authenticate/?next=%2Fmodels%2F">Sign in with Test IdP'
        in page
    )

    response = client.post("/login/", {"username": "alice", "password": "pw"})

    assert response.status_code == 302 and session_user(client) == data_scientist


# --- Mappings: administrators only, audited from any edge -------------------------------------


def test_mapping_changes_are_audited_with_the_administrator(roles, admin_user):
    actor = Actor.system("cli", user=admin_user)  # e.g. from manage.py shell

    mapping = sso.idp_mapping_create(
        actor=actor, idp_group="cn=ml,ou=groups", role=roles["reviewer"]
    )
    sso.idp_mapping_change(actor=actor, mapping=mapping, role=roles["viewer"])
    sso.idp_mapping_delete(actor=actor, mapping=mapping)

    created, changed, deleted = (
        events(f"sso_mapping.{what}")[0] for what in ("created", "changed", "deleted")
    )
    assert all(
        e.actor_id == admin_user.pk and e.channel == "cli" for e in (created, changed, deleted)
    )
    assert created.details == {"idp_group": "cn=ml,ou=groups", "role": "reviewer"}
    assert changed.details["changes"] == {"role": {"from": "reviewer", "to": "viewer"}}
    assert deleted.details == {"idp_group": "cn=ml,ou=groups", "role": "viewer"}
    assert not IdpGroupMapping.objects.exists()


def test_mappings_refuse_non_administrators_non_roles_and_inexact_values(
    roles, admin_user, data_scientist
):
    actor = Actor.system("cli", user=admin_user)
    with pytest.raises(Forbidden):
        sso.idp_mapping_create(
            actor=Actor.system("cli", user=data_scientist), idp_group="mg", role=roles["admin"]
        )
    team = Group.objects.create(name="team-x")
    superusers = Group.objects.create(name="superuser")
    for group in (team, superusers):
        with pytest.raises(ValidationFailed):
            sso.idp_mapping_create(actor=actor, idp_group="mg", role=group)
    for value in ("", " mg", "mg ", "mg\x00", "m" * 201):
        with pytest.raises(ValidationFailed):
            sso.idp_mapping_create(actor=actor, idp_group=value, role=roles["viewer"])
    sso.idp_mapping_create(actor=actor, idp_group="mg", role=roles["viewer"])
    with pytest.raises(Conflict):
        sso.idp_mapping_create(actor=actor, idp_group="mg", role=roles["viewer"])
    assert IdpGroupMapping.objects.count() == 1 and len(events("sso_mapping.created")) == 1


def test_admin_pages_add_and_delete_mappings_through_the_audited_service(roles, admin_user):
    client = Client()
    client.force_login(admin_user)
    team = Group.objects.create(name="team-x")

    refused = client.post(
        "/admin/governance/idpgroupmapping/add/", {"idp_group": "mg", "role": team.pk}
    )
    assert refused.status_code == 200 and not IdpGroupMapping.objects.exists()
    added = client.post(
        "/admin/governance/idpgroupmapping/add/",
        {"idp_group": "mg-reviewers", "role": roles["reviewer"].pk},
    )
    assert added.status_code == 302
    mapping = IdpGroupMapping.objects.get()
    assert mapping.created_by == admin_user
    deleted = client.post(
        f"/admin/governance/idpgroupmapping/{mapping.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302 and not IdpGroupMapping.objects.exists()

    [created] = events("sso_mapping.created")
    [removed] = events("sso_mapping.deleted")
    assert created.actor_id == removed.actor_id == admin_user.pk
    assert created.channel == removed.channel == "admin"


def test_command_maps_and_unmaps_as_the_named_administrator(roles, admin_user, data_scientist):
    out = StringIO()
    call_command(
        "sso_group_mapping", "add", "cn=ml,ou=groups", "reviewer", "--as", "root", stdout=out
    )
    call_command("sso_group_mapping", "list", stdout=out)
    assert "cn=ml,ou=groups\treviewer" in out.getvalue()
    with pytest.raises(CommandError, match="administrator"):
        call_command("sso_group_mapping", "remove", "cn=ml,ou=groups", "reviewer", "--as", "alice")
    with pytest.raises(CommandError, match="Modelgate roles"):
        call_command("sso_group_mapping", "add", "cn=ml,ou=groups", "superuser", "--as", "root")
    call_command(
        "sso_group_mapping", "remove", "cn=ml,ou=groups", "reviewer", "--as", "root", stdout=out
    )

    assert not IdpGroupMapping.objects.exists()
    [created], [deleted] = events("sso_mapping.created"), events("sso_mapping.deleted")
    assert created.actor_id == deleted.actor_id == admin_user.pk and created.channel == "cli"


def test_admin_lists_identities_to_administrators_only(idp, admin_user, data_scientist):
    sign_in(Client(), "dana")
    client = Client()
    client.force_login(admin_user)
    assert b"dana" in client.get("/admin/governance/externalidentity/").content
    User.objects.filter(pk=data_scientist.pk).update(is_staff=True)
    client.force_login(data_scientist)
    assert client.get("/admin/governance/externalidentity/").status_code == 403


@pytest.mark.parametrize(
    "env,message",
    [
        ({"OIDC_RP_CLIENT_ID": "mg"}, "OIDC_RP_CLIENT_SECRET and OIDC_OP_ISSUER must be set"),
        (
            {
                "OIDC_RP_CLIENT_ID": "mg",
                "OIDC_RP_CLIENT_SECRET": "s",
                "OIDC_OP_ISSUER": "https://i",
                "OIDC_RP_SIGN_ALGO": "HS256",
            },
            "OIDC_RP_SIGN_ALGO must be an asymmetric algorithm",
        ),
        (
            {
                "DEBUG": "false",
                "SECRET_KEY": secrets.token_urlsafe(40),
                "ALLOWED_HOSTS": "mg.example",
                "OIDC_RP_CLIENT_ID": "mg",
                "OIDC_RP_CLIENT_SECRET": "s",
                "OIDC_OP_ISSUER": "http://login.example/realm",
            },
            "OIDC_OP_ISSUER: must start with https:// when DEBUG is off",
        ),
        (
            {
                "DEBUG": "false",
                "SECRET_KEY": secrets.token_urlsafe(40),
                "ALLOWED_HOSTS": "mg.example",
                "OIDC_RP_CLIENT_ID": "mg",
                "OIDC_RP_CLIENT_SECRET": "s",
                "OIDC_OP_ISSUER": "https://login.example/realm",
                "OIDC_OP_TOKEN_ENDPOINT": "http://login.example/token",
            },
            "OIDC_OP_TOKEN_ENDPOINT: must start with https:// when DEBUG is off",
        ),
    ],
)
def test_incomplete_symmetric_or_plain_http_configuration_stops_start_up(tmp_path, env, message):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; "
            "os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()",
        ],
        env={"MODELGATE_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0 and message in result.stderr
