"""Single sign-on: which account an OpenID Connect subject signs in as, and which roles the
identity provider's groups give it, through mappings an administrator approved.

Account matching (README, "Single sign-on"):
- An account is found by its link to the (issuer, sub) pair, the provider's stable key.
- With no link yet, the e-mail address counts only if the provider says it is verified
  (``email_verified`` true) and it is ASCII; it names the accounts whose address is the same
  ignoring ASCII case (never PostgreSQL's UPPER(), under which "ı" and "ſ" are "I" and "S").
  If one of them is inactive the sign-in is refused: a deactivated person must not come back
  as a new account. An unverified address never links: anyone may type any address at some
  providers, and linking on it would hand them the local account.
- An existing account is linked (``OIDC_LINK_VERIFIED_EMAIL``) only if it is the only one with
  that address, is not linked to another subject at this issuer and is a plain account:
  active, neither staff nor superuser, in no group (so no role) and without any permission of
  its own or any per-model grant. A privileged account is never handed to the provider on the
  strength of an address; an administrator removes the privileges first, or the person gets a
  new account.
- Otherwise a new account is created (``OIDC_CREATE_USER``), with an unusable password and an
  ASCII username from ``OIDC_USERNAME_CLAIM`` (NFKC-normalised like Django's, accents dropped,
  anything else an underscore, so it never looks like another account's), made unique with a
  hash of the subject.
- At every sign-in, an account that is staff or superuser, or an administrator other than
  through a mapped admin role, is refused (reason "privileged"): those are local decisions the
  provider must not inherit.

Roles: a role is managed by single sign-on while some mapping names it. At each sign-in the
user holds a managed role exactly when one of their group values equals (exactly, never as a
prefix) a mapped value; unmapped values grant nothing; roles no mapping names are left alone;
a mapping whose group is no longer a role (renamed outside the admin) grants nothing.
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
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Forbidden, NotFound, ValidationFailed
from governance.models import ExternalIdentity, IdpGroupMapping, RegisteredModelUserPermission
from governance.roles import ROLES
from registry.services.common import (
    UNSET,
    apply_changes,
    insert_or_conflict,
    require_admin,
)

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
        raise ValidationFailed(
            "Give the group's value as the provider sends it.", field="idp_group"
        )
    if len(value) > MAX_GROUP_VALUE:
        raise ValidationFailed(f"At most {MAX_GROUP_VALUE} characters.", field="idp_group")
    if value != value.strip() or any(unicodedata.category(c)[0] == "C" for c in value):
        raise ValidationFailed(
            "No leading or trailing spaces and no control characters: the "
            "value must match the claim exactly.",
            field="idp_group",
        )
    return value


def _role(role: Any) -> Group:
    if not isinstance(role, Group) or role.name not in ROLES:
        raise ValidationFailed(
            f"Map to one of the Modelgate roles: {', '.join(ROLES)}.", field="role"
        )
    return role


def idp_mapping_validate(idp_group: Any, role: Any) -> tuple[str, Group]:
    """The rules for a mapping's fields (forms ask before saving)."""
    return _group_value(idp_group), _role(role)


def _mapping_details(mapping: IdpGroupMapping) -> dict[str, object]:
    return {"idp_group": mapping.idp_group, "role": mapping.role.name}


@transaction.atomic
def idp_mapping_create(*, actor: Actor, idp_group: str, role: Group | None) -> IdpGroupMapping:
    """Members of `idp_group` at the identity provider hold `role` from their next sign-in
    (None, a role that does not exist, is refused like any group that is no role)."""
    require_admin(actor, "map identity-provider groups to roles")
    idp_group, role = idp_mapping_validate(idp_group, role)
    now = timezone.now()
    mapping = insert_or_conflict(
        lambda: IdpGroupMapping.objects.create(
            idp_group=idp_group,
            role=role,
            created_at=now,
            updated_at=now,
            created_by=acting_user(actor),
        ),
        "That group is already mapped to that role.",
        code="mapping_exists",
    )
    audit.record(
        actor=actor, action="sso_mapping.created", target=mapping, details=_mapping_details(mapping)
    )
    return mapping


@transaction.atomic
def idp_mapping_change(
    *, actor: Actor, mapping: IdpGroupMapping, idp_group: Any = UNSET, role: Any = UNSET
) -> IdpGroupMapping:
    require_admin(actor, "map identity-provider groups to roles")
    stored = (
        IdpGroupMapping.objects.select_for_update()
        .select_related("role")
        .filter(pk=mapping.pk)
        .first()
    )
    if stored is None:
        raise NotFound("That mapping no longer exists.", code="mapping_not_found")
    changes = {
        "idp_group": UNSET if idp_group is UNSET else _group_value(idp_group),
        "role": UNSET if role is UNSET else _role(role),
    }
    diff = apply_changes(stored, changes)
    if diff:
        stored.updated_at = timezone.now()
        insert_or_conflict(
            lambda: stored.save(update_fields=["idp_group", "role", "updated_at"]),
            "That group is already mapped to that role.",
            code="mapping_exists",
        )
        audit.record(
            actor=actor,
            action="sso_mapping.changed",
            target=stored,
            details={**_mapping_details(stored), "changes": diff},
        )
    return stored


@transaction.atomic
def idp_mapping_delete(*, actor: Actor, mapping: IdpGroupMapping) -> None:
    """Remove a mapping. Users keep the role until their next sign-in; if no other mapping
    names the role, it is no longer managed and they keep it until an administrator removes
    it (README)."""
    require_admin(actor, "map identity-provider groups to roles")
    stored = (
        IdpGroupMapping.objects.select_for_update()
        .select_related("role")
        .filter(pk=mapping.pk)
        .first()
    )
    if stored is None:
        raise NotFound("That mapping no longer exists.", code="mapping_not_found")
    audit.record(
        actor=actor, action="sso_mapping.deleted", target=stored, details=_mapping_details(stored)
    )
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
        if (
            not isinstance(issuer, str)
            or not issuer
            or not isinstance(subject, str)
            or not subject
            or len(subject) > 255
            or len(issuer) > 500
        ):
            raise SsoRefused("The identity provider sent no usable subject.", reason="no_subject")
        email = claims.get("email")
        email = email.strip() if isinstance(email, str) and len(email) <= 254 else ""
        verified = claims.get("email_verified")
        username = claims.get(settings.OIDC_USERNAME_CLAIM)
        return cls(
            issuer=issuer,
            subject=subject,
            email=email,
            # Some providers send the flag as the string "true"; nothing else counts.
            email_verified=bool(email) and (verified is True or verified == "true"),
            username=username if isinstance(username, str) else "",
            first_name=_text(claims.get("given_name")),
            last_name=_text(claims.get("family_name")),
            groups=group_values(claims.get(settings.OIDC_GROUPS_CLAIM)),
        )


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


_USERNAME_BAD = re.compile(r"[^A-Za-z0-9.@+_-]")


def _username_base(claims: SsoClaims) -> str:
    """An ASCII username from the claim: NFKC first (as Django normalises usernames, so
    full-width "ｒｏｏｔ" is "root" and meets the collision check as such), accents dropped,
    every other character an underscore (so Cyrillic "rооt" cannot pass for "root")."""
    name = User.normalize_username(claims.username or claims.email.partition("@")[0])
    name = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return _USERNAME_BAD.sub("_", name)[:120] or "sso-user"


def _create_user(claims: SsoClaims) -> User:
    """A new account under the first free name of: the claim's, with a short and a long hash
    of the subject, the hash alone. A name taken between the check and the insert (two first
    sign-ins at once) moves on to the next one instead of failing."""
    base = _username_base(claims)
    digest = hashlib.sha256(f"{claims.issuer}\n{claims.subject}".encode()).hexdigest()
    for candidate in (base, f"{base}-{digest[:8]}", f"{base}-{digest[:24]}", f"sso-{digest[:40]}"):
        if User.objects.filter(username__iexact=candidate).exists():
            continue
        user = User(username=candidate)
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            continue
        return user
    raise SsoRefused("No username is free for this account; try again.", reason="username_taken")


def _accounts_with_email(claims: SsoClaims) -> list[User]:
    """The accounts a verified address names: exactly that ASCII address, ignoring ASCII case.
    iexact alone would also match look-alikes on PostgreSQL (UPPER('ı') is 'I'), and
    str.casefold() still folds 'ſ' into 's', so non-ASCII addresses name no account."""
    if not claims.email_verified or not claims.email.isascii():
        return []
    wanted = claims.email.lower()
    return [
        user
        for user in User.objects.filter(email__iexact=claims.email)
        if user.email.isascii() and user.email.lower() == wanted
    ]


def _plain(user: User) -> bool:
    """Active, not staff nor superuser, in no group (so holding no role, administrator's
    included) and with no permission of its own nor any per-model grant."""
    return (
        user.is_active
        and not user.is_staff
        and not user.is_superuser
        and not user.groups.exists()
        and not user.user_permissions.exists()
        and not RegisteredModelUserPermission.objects.filter(user=user).exists()
    )


def _linkable(claims: SsoClaims, accounts: list[User]) -> User | None:
    """The one existing account a verified address may link to, if any."""
    if not settings.OIDC_LINK_VERIFIED_EMAIL or len(accounts) != 1:
        return None
    user = accounts[0]
    if (
        not _plain(user)
        or ExternalIdentity.objects.filter(user=user, issuer=claims.issuer).exists()
    ):
        return None
    return user


def _update_profile(user: User, claims: SsoClaims) -> None:
    changes = {
        "first_name": claims.first_name or user.first_name,
        "last_name": claims.last_name or user.last_name,
    }
    # Only a verified address is stored, and only one no other account uses: notifications go
    # there, and a verified address is what linking trusts.
    if (
        claims.email_verified
        and claims.email.lower() != user.email.lower()
        and not User.objects.filter(email__iexact=claims.email).exclude(pk=user.pk).exists()
    ):
        changes["email"] = claims.email
    if apply_changes(user, changes):
        user.save(update_fields=list(changes))


def _audited_values(values: tuple[str, ...]) -> dict[str, object]:
    return {
        "values": [v[:MAX_GROUP_VALUE] for v in values[:AUDITED_VALUES]],
        "values_count": len(values),
    }


def _sync_roles(actor: Actor, user: User, claims: SsoClaims) -> set[str]:
    """Set the user's managed roles from the claim; returns the managed roles' names."""
    # Only groups that are roles: a mapping's role check runs when it is saved, and a group
    # renamed since (outside the admin, which keeps role names) must not be handed out.
    mappings = list(
        IdpGroupMapping.objects.select_related("role").filter(role__name__in=list(ROLES))
    )
    managed = {m.role_id: m.role for m in mappings}
    values = set(claims.groups)
    wanted = {m.role_id for m in mappings if m.idp_group in values}
    held = set(user.groups.filter(pk__in=managed).values_list("pk", flat=True))
    added, removed = wanted - held, held - wanted
    if not added and not removed:
        return {role.name for role in managed.values()}
    user.groups.add(*added)
    user.groups.remove(*removed)
    permissions.invalidate(user)
    audit.record(
        actor=actor,
        action="user.sso_roles_changed",
        target=user,
        details={
            "user": user.username,
            "via": "oidc",
            "issuer": claims.issuer,
            "subject": claims.subject,
            "claim": settings.OIDC_GROUPS_CLAIM,
            **_audited_values(claims.groups),
            "matched": sorted(m.idp_group for m in mappings if m.idp_group in values),
            "added": sorted(managed[pk].name for pk in added),
            "removed": sorted(managed[pk].name for pk in removed),
        },
    )
    return {role.name for role in managed.values()}


def _refuse_privileged(user: User, managed: set[str]) -> None:
    """Staff, superusers and administrators are local decisions: an account that is one is
    never reached through the provider, even if it was linked before it became one. The one
    exception is the admin role while a mapping manages it: then the provider's groups decide
    it at every sign-in, as an administrator chose by making that mapping."""
    permissions.invalidate(user)
    admin_by_mapping = "admin" in managed and user.groups.filter(name="admin").exists()
    if (
        user.is_staff
        or user.is_superuser
        or (permissions.is_administrator(user) and not admin_by_mapping)
    ):
        raise SsoRefused(
            "This account holds administrative rights given in Modelgate; sign in "
            "with its password.",
            reason="privileged",
        )


@transaction.atomic
def sso_sign_in(
    *, claims: SsoClaims, request_id: str = "", client_address: str | None = None
) -> User:
    """The account these validated claims sign in as, its roles set from the mapped groups.
    Creating or linking the account and every role change are audited, with the user acting
    through single sign-on. Raises SsoRefused (nothing changed) for an inactive account, an
    inactive account with the verified address, a privileged account, or when creating
    accounts is off."""

    def actor_for(user: User) -> Actor:
        return Actor(
            user=user,
            channel="web",
            request_id=request_id or Actor.system().request_id,
            client_address=client_address,
        )

    now = timezone.now()
    identity = (
        ExternalIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=claims.issuer, subject=claims.subject)
        .first()
    )
    who = {"via": "oidc", "issuer": claims.issuer, "subject": claims.subject}
    if identity is not None:
        user = identity.user
        if not user.is_active:
            raise SsoRefused("This account is disabled.", reason="inactive")
        identity.last_login_at = now
        identity.save(update_fields=["last_login_at"])
    else:
        accounts = _accounts_with_email(claims)
        if any(not account.is_active for account in accounts):
            raise SsoRefused(
                "The Modelgate account with this e-mail address is disabled.", reason="inactive"
            )
        linked = _linkable(claims, accounts)
        if linked is not None:
            user = linked
            audit.record(
                actor=actor_for(user),
                action="user.sso_linked",
                target=user,
                details={"user": user.username, **who, "email": claims.email},
            )
        elif not settings.OIDC_CREATE_USER:
            raise SsoRefused(
                "No Modelgate account is linked to this sign-in; ask an administrator.",
                reason="no_account",
            )
        else:
            user = _create_user(claims)
            audit.record(
                actor=actor_for(user),
                action="user.created",
                target=user,
                details={"user": user.username, **who},
            )
        insert_or_conflict(
            lambda: ExternalIdentity.objects.create(
                user=user,
                issuer=claims.issuer,
                subject=claims.subject,
                created_at=now,
                last_login_at=now,
            ),
            "This sign-in is being linked already; try again.",
            code="identity_exists",
        )
    _update_profile(user, claims)
    _refuse_privileged(user, _sync_roles(actor_for(user), user, claims))
    return user
