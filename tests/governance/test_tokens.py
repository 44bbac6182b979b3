from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.actors import Actor
from core.errors import Forbidden
from core.models import ApiToken, AuditEvent
from core.tokens import token_create, token_revoke
from governance.models import RegisteredModelUserPermission

pytestmark = pytest.mark.django_db


def _get(client, raw):
    return client.get("/api/v1/models/", HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_token_is_stored_hashed_and_authenticates(client, data_scientist):
    token, raw = token_create(
        actor=Actor.system("cli", user=data_scientist), user=data_scientist, name="ci"
    )
    assert raw.startswith("mg_") and raw not in token.digest and len(token.digest) == 64
    assert not ApiToken.objects.filter(digest__contains=raw[3:]).exists()
    assert _get(client, raw).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    event = AuditEvent.objects.get(action="token.created")
    assert raw not in str(event.details)


def test_expired_revoked_and_wrong_tokens_are_401(client, data_scientist):
    actor = Actor.system("cli", user=data_scientist)
    expired, raw_expired = token_create(
        actor=actor,
        user=data_scientist,
        name="old",
        expires_at=timezone.now() + timedelta(seconds=1),
    )
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))
    revoked, raw_revoked = token_create(actor=actor, user=data_scientist, name="rev")
    token_revoke(actor=actor, token=revoked)
    for raw in (raw_expired, raw_revoked, "mg_wrong", "not-even-prefixed"):
        r = _get(client, raw)
        assert r.status_code == 401 and r.json()["code"] == "authentication_failed"


def test_inactive_users_tokens_stop_working(client, data_scientist):
    _, raw = token_create(
        actor=Actor.system("cli", user=data_scientist), user=data_scientist, name="x"
    )
    data_scientist.is_active = False
    data_scientist.save()
    assert _get(client, raw).status_code == 401


def test_users_cannot_mint_tokens_for_others(data_scientist, viewer):
    with pytest.raises(Forbidden):
        token_create(actor=Actor.system("cli", user=viewer), user=data_scientist, name="x")


def test_token_create_command_prints_a_working_token(client, data_scientist, capsys):
    call_command("token_create", "alice", "--name", "cli")
    raw = capsys.readouterr().out.strip()
    assert _get(client, raw).status_code == 200


def test_token_requests_get_their_role_permissions_and_lose_them_at_once(
    client, roles, data_scientist, viewer
):
    from tests.factories import make_model

    make_model(data_scientist, "m")
    url = "/api/v1/models/m/versions/"
    _, ds_raw = token_create(
        actor=Actor.system("cli", user=data_scientist), user=data_scientist, name="ds"
    )
    _, viewer_raw = token_create(actor=Actor.system("cli", user=viewer), user=viewer, name="v")

    def post(raw):
        return client.post(
            url, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
        )

    assert post(viewer_raw).status_code == 403
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {viewer_raw}").status_code == 200
    assert post(ds_raw).status_code == 201
    # The creator's per-model grants still allow it; with them and the role gone, the very
    # next request is refused: nothing is cached across requests.
    RegisteredModelUserPermission.objects.filter(user=data_scientist).delete()
    assert post(ds_raw).status_code == 201
    data_scientist.groups.remove(roles["data scientist"])
    assert post(ds_raw).status_code == 404
