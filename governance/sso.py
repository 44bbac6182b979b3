"""Single sign-on: which account an OpenID Connect subject signs in as, and which roles the
identity provider's groups give it, through mappings an administrator approved.

Account matching (README, "Single sign-on"):
- An account is found by its link to the (issuer, sub) pair, the provider's stable key.
- With no link yet, an existing account is linked only if the provider says the e-mail
  address is verified (``email_verified`` true), exactly one account has that address, and
  that account is active, neither staff nor superuser, and not linked to another subject at
  this issuer. An unverified address never links: anyone may type any address at some
  providers, and linking on it would hand them the local account.
- Otherwise a new account is created (``OIDC_CREATE_USER``), with an unusable password and a
  username from ``OIDC_USERNAME_CLAIM`` made unique with a hash of the subject.

Roles: a role is managed by single sign-on while some mapping names it. At each sign-in the
user holds a managed role exactly when one of their group values equals (exactly, never as a
prefix) a mapped value; unmapped values grant nothing; roles no mapping names are left alone.
Single sign-on never sets staff or superuser: those stay local decisions.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from governance import audit, permissions
from governance.actors import Actor
from governance.models import ExternalIdentity, IdpGroupMapping
from governance.roles import ROLES
from registry.errors import Forbidden, NotFound, ValidationFailed
from registry.services.common import UNSET, apply_changes, insert_or_conflict, require_admin

MAX_GROUP_VALUE = 200
# At most this many claim values are kept in an audit event (with the total count).
AUDITED_VALUES = 100


class SsoRefused(Forbidden):
    """A single sign-on that must not log anyone in; `reason` is a short stable word for the
    audit log, the message is for the person signing in."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, code="sso_refused")
        self.reason = reason


# --- Mappings: administrators only, every change audited ---------------------------------------

def _group_value(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed("Give the group's value as the provider sends it.",
                               field="idp_group")
    if len(value) > MAX_GROUP_VALUE:
        raise ValidationFailed(f"At most {MAX_GROUP_VALUE} characters.", field="idp_group")
    if value != value.strip() or any(unicodedata.category(c)[0] == "C" for c in value):
        raise ValidationFailed("No leading or trailing spaces and no control characters: the "
                               "value must match the claim exactly.", field="idp_group")
    return value


def _role(role: Any) -> Group:
    if not isinstance(role, Group) or role.name not in ROLES:
        raise ValidationFailed(f"Map to one of the Modelgate roles: {', '.join(ROLES)}.",
                               field="role")
    return role


def idp_mapping_validate(idp_group: Any, role: Any) -> tuple[str, Group]:
    """The rules for a mapping's fields (forms ask before saving)."""
    return _group_value(idp_group), _role(role)


def _mapping_details(mapping: IdpGroupMapping) -> dict[str, object]:
    return {"idp_group": mapping.idp_group, "role": mapping.role.name}


@transaction.atomic
def idp_mapping_create(*, actor: Actor, idp_group: str, role: Group) -> IdpGroupMapping:
    """Members of `idp_group` at the identity provider hold `role` from their next sign-in."""
    require_admin(actor, "map identity-provider groups to roles")
    idp_group, role = idp_mapping_validate(idp_group, role)
    now = timezone.now()
    mapping = insert_or_conflict(
        lambda: IdpGroupMapping.objects.create(
            idp_group=idp_group, role=role, created_at=now, updated_at=now,
            created_by=actor.user if actor.user_id is not None else None),
        "That group is already mapped to that role.", code="mapping_exists")
    audit.record(actor=actor, action="sso_mapping.created", target=mapping,
                 details=_mapping_details(mapping))
    return mapping


@transaction.atomic
def idp_mapping_change(*, actor: Actor, mapping: IdpGroupMapping, idp_group: Any = UNSET,
                       role: Any = UNSET) -> IdpGroupMapping:
    require_admin(actor, "map identity-provider groups to roles")
    stored = IdpGroupMapping.objects.select_for_update().select_related("role").filter(
        pk=mapping.pk).first()
    if stored is None:
        raise NotFound("That mapping no longer exists.", code="mapping_not_found")
    changes = {"idp_group": UNSET if idp_group is UNSET else _group_value(idp_group),
               "role": UNSET if role is UNSET else _role(role)}
    diff = apply_changes(stored, changes)
    if diff:
        stored.updated_at = timezone.now()
        insert_or_conflict(lambda: stored.save(update_fields=["idp_group", "role", "updated_at"]),
                           "That group is already mapped to that role.", code="mapping_exists")
        audit.record(actor=actor, action="sso_mapping.changed", target=stored,
                     details={**_mapping_details(stored), "changes": diff})
    return stored


@transaction.atomic
def idp_mapping_delete(*, actor: Actor, mapping: IdpGroupMapping) -> None:
    """Remove a mapping. Users keep the role until their next sign-in; if no other mapping
    names the role, it is no longer managed and they keep it until an administrator removes
    it (README)."""
    require_admin(actor, "map identity-provider groups to roles")
    stored = IdpGroupMapping.objects.select_for_update().select_related("role").filter(
        pk=mapping.pk).first()
    if stored is None:
        raise NotFound("That mapping no longer exists.", code="mapping_not_found")
    audit.record(actor=actor, action="sso_mapping.deleted", target=stored,
                 details=_mapping_details(stored))
    stored.delete()


# --- Sign-in -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SsoClaims:
    """What Modelgate uses from a validated ID token and the userinfo answer."""

    issuer: str
    subject: str
    email: str = ""
    email_verified: bool = False
    username: str = ""
    first_name: str = ""
    last_name: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> SsoClaims:
        issuer, subject = claims.get("iss"), claims.get("sub")
        if not isinstance(issuer, str) or not issuer or not isinstance(subject, str) \
                or not subject or len(subject) > 255 or len(issuer) > 500:
            raise SsoRefused("The identity provider sent no usable subject.",
                             reason="no_subject")
        email = claims.get("email")
        email = email.strip() if isinstance(email, str) and len(email) <= 254 else ""
        verified = claims.get("email_verified")
        username = claims.get(settings.OIDC_USERNAME_CLAIM)
        return cls(
            issuer=issuer, subject=subject, email=email,
            # Some providers send the flag as the string "true"; nothing else counts.
            email_verified=bool(email) and (verified is True or verified == "true"),
            username=username if isinstance(username, str) else "",
            first_name=_text(claims.get("given_name")), last_name=_text(claims.get("family_name")),
            groups=group_values(claims.get(settings.OIDC_GROUPS_CLAIM)))


def _text(value: Any) -> str:
    return value[:150] if isinstance(value, str) else ""


def group_values(value: Any) -> tuple[str, ...]:
    """The groups claim as strings: a list of strings, or one string. Anything else (numbers,
    objects) matches nothing."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(v for v in value if isinstance(v, str)))


_USERNAME_BAD = re.compile(r"[^\w.@+-]")


def _new_username(claims: SsoClaims) -> str:
    base = claims.username or claims.email.partition("@")[0] or "sso-user"
    base = _USERNAME_BAD.sub("_", base)[:120] or "sso-user"
    digest = hashlib.sha256(f"{claims.issuer}\n{claims.subject}".encode()).hexdigest()
    for candidate in (base, f"{base}-{digest[:8]}", f"{base}-{digest[:24]}"):
        if not User.objects.filter(username__iexact=candidate).exists():
            return candidate
    return f"sso-{digest[:40]}"


def _linkable(claims: SsoClaims) -> User | None:
    """The one existing account a verified e-mail address may link to, if any."""
    if not (settings.OIDC_LINK_VERIFIED_EMAIL and claims.email_verified):
        return None
    candidates = list(User.objects.filter(email__iexact=claims.email)[:2])
    if len(candidates) != 1:
        return None
    user = candidates[0]
    if not user.is_active or user.is_staff or user.is_superuser:
        return None
    if ExternalIdentity.objects.filter(user=user, issuer=claims.issuer).exists():
        return None
    return user


def _update_profile(user: User, claims: SsoClaims) -> None:
    changes = {"first_name": claims.first_name or user.first_name,
               "last_name": claims.last_name or user.last_name}
    # Only a verified address is stored, and only one no other account uses: notifications go
    # there, and a verified address is what linking trusts.
    if claims.email_verified and claims.email.lower() != user.email.lower() and not \
            User.objects.filter(email__iexact=claims.email).exclude(pk=user.pk).exists():
        changes["email"] = claims.email
    if apply_changes(user, changes):
        user.save(update_fields=list(changes))


def _audited_values(values: tuple[str, ...]) -> dict[str, object]:
    return {"values": [v[:MAX_GROUP_VALUE] for v in values[:AUDITED_VALUES]],
            "values_count": len(values)}


def _sync_roles(actor: Actor, user: User, claims: SsoClaims) -> None:
    mappings = list(IdpGroupMapping.objects.select_related("role"))
    managed = {m.role_id: m.role for m in mappings}
    values = set(claims.groups)
    wanted = {m.role_id for m in mappings if m.idp_group in values}
    held = set(user.groups.filter(pk__in=managed).values_list("pk", flat=True))
    added, removed = wanted - held, held - wanted
    if not added and not removed:
        return
    user.groups.add(*added)
    user.groups.remove(*removed)
    permissions.invalidate(user)
    audit.record(actor=actor, action="user.sso_roles_changed", target=user, details={
        "user": user.username, "via": "oidc", "issuer": claims.issuer,
        "subject": claims.subject, "claim": settings.OIDC_GROUPS_CLAIM,
        **_audited_values(claims.groups),
        "matched": sorted(m.idp_group for m in mappings if m.idp_group in values),
        "added": sorted(managed[pk].name for pk in added),
        "removed": sorted(managed[pk].name for pk in removed)})


@transaction.atomic
def sso_sign_in(*, claims: SsoClaims, request_id: str = "",
                client_address: str | None = None) -> User:
    """The account these validated claims sign in as, its roles set from the mapped groups.
    Creating or linking the account and every role change are audited, with the user acting
    through single sign-on. Raises SsoRefused for an inactive account or when creating
    accounts is off."""
    def actor_for(user: User) -> Actor:
        return Actor(user=user, channel="web", request_id=request_id or Actor.system().request_id,
                     client_address=client_address)

    now = timezone.now()
    identity = ExternalIdentity.objects.select_for_update().select_related("user").filter(
        issuer=claims.issuer, subject=claims.subject).first()
    who = {"via": "oidc", "issuer": claims.issuer, "subject": claims.subject}
    if identity is not None:
        user = identity.user
        if not user.is_active:
            raise SsoRefused("This account is disabled.", reason="inactive")
        identity.last_login_at = now
        identity.save(update_fields=["last_login_at"])
    else:
        user = _linkable(claims)
        if user is not None:
            audit.record(actor=actor_for(user), action="user.sso_linked", target=user,
                         details={"user": user.username, **who, "email": claims.email})
        elif not settings.OIDC_CREATE_USER:
            raise SsoRefused("No Modelgate account is linked to this sign-in; ask an "
                             "administrator.", reason="no_account")
        else:
            user = User(username=_new_username(claims))
            user.set_unusable_password()
            user.save()
            audit.record(actor=actor_for(user), action="user.created", target=user,
                         details={"user": user.username, **who})
        insert_or_conflict(lambda: ExternalIdentity.objects.create(
            user=user, issuer=claims.issuer, subject=claims.subject, created_at=now,
            last_login_at=now), "This sign-in is being linked already; try again.",
            code="identity_exists")
    _update_profile(user, claims)
    _sync_roles(actor_for(user), user, claims)
    return user
