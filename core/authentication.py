"""DRF authentication with personal tokens: ``Authorization: Bearer mg_…``."""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.refusals import token_rejected
from core.tokens import token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"bearer", b"token"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.") from None
        user = token_authenticate(raw)
        if user is None:
            token_rejected(request, raw)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
