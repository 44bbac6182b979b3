"""Who is acting, through which channel: built by an edge, passed to every service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest


@dataclass(frozen=True)
class Actor:
    user: User | AnonymousUser | None
    channel: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_address: str | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, *, channel: str | None = None) -> Actor:
        path = request.path or ""
        if channel is None:
            channel = (
                "api"
                if path.startswith("/api/")
                else "admin"
                if path.startswith("/admin/")
                else "web"
            )
        return cls(
            user=request.user,
            channel=channel,
            request_id=request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex,
            client_address=request.META.get("REMOTE_ADDR") or None,
        )

    @classmethod
    def system(cls, channel: str = "worker", user: User | None = None) -> Actor:
        return cls(user=user, channel=channel)

    @property
    def user_id(self) -> int | None:
        return self.user.pk if self.user is not None and self.user.is_authenticated else None


def acting_user(actor: Actor) -> User | None:
    """The signed-in user behind `actor`, for the `*_by` columns and the audit log's actor:
    None for the system and for anonymous visitors."""
    user = actor.user
    return user if isinstance(user, User) and actor.user_id is not None else None
