"""Personal API tokens: random secrets shown once, stored as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import OuterRef
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor
from core.compiled import CompiledQuery
from core.errors import Forbidden, ValidationFailed
from core.models import ApiToken

TOKEN_PREFIX = "mg_"
# Writing last_used_at on every request would turn each read into a write; a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_fields(name: str, expires_at: datetime | None) -> str:
    """The rules for a new token's name and expiry (the admin's form checks them too); returns
    the name as stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("Name must be 1–100 characters.", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("Expiry must be in the future.", field="expires_at")
    return name


@transaction.atomic
def token_create(
    *, actor: Actor, user: User, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the secret, which is never stored."""
    if actor.user_id != user.pk and not permissions.is_superuser(actor.user):
        raise Forbidden("You may only create tokens for yourself.", code="permission_denied")
    name = token_fields(name, expires_at)
    now = timezone.now()
    body = secrets.token_urlsafe(32)
    raw = f"{TOKEN_PREFIX}{body}"
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=body[:8],
        digest=_digest(raw),
        created_at=now,
        expires_at=expires_at,
    )
    audit.record(
        actor=actor,
        action="token.created",
        target=token,
        details={
            "user": user.get_username(),
            "name": name,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    if actor.user_id != token.user_id and not permissions.is_superuser(actor.user):
        raise Forbidden("You may only revoke your own tokens.", code="permission_denied")
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db()
    if updated:
        audit.record(
            actor=actor,
            action="token.revoked",
            target=token,
            details={"user": token.user.get_username(), "name": token.name},
        )
    return token


# Every token request runs this: compiled once per process (core.compiled).
_TOKEN_BY_DIGEST: CompiledQuery[ApiToken] = CompiledQuery(
    lambda shape, digest: (
        ApiToken.objects.select_related("user")
        .annotate(registry_codenames=permissions.global_codenames_column(OuterRef("user_id")))
        .filter(digest=digest)
        .order_by("pk")[:1]
    )
)


def token_authenticate(raw: str) -> User | None:
    """The active user owning a valid, unexpired, unrevoked token, else None."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(raw)
    token = _TOKEN_BY_DIGEST.first(digest=digest)
    # The lookup is by digest, so timing reveals nothing of the secret; compare anyway.
    if token is None or not hmac.compare_digest(token.digest, digest):
        return None
    now = timezone.now()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not token.user.is_active:
        return None
    permissions.remember_global(token.user, token.registry_codenames)  # type: ignore[attr-defined]
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
