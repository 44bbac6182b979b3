"""How the MLflow client authenticates: ``MLFLOW_TRACKING_TOKEN`` sends ``Bearer <token>``
(Modelgate's API tokens, core.authentication); ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` send
HTTP Basic, checked like a sign-in on the login page: through Django's authenticate(), so
django-axes counts failures per user name and address, refuses a locked-out pair without
checking the password, and every failure and lockout is audited (core.refusals)."""

from __future__ import annotations

import base64
import binascii
import math

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from rest_framework import authentication, exceptions
from rest_framework.request import Request

MAX_USERNAME = 150  # Django's user name length, as the login form enforces


class BasicPasswordAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, None] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"basic":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            username, sep, password = (
                base64.b64decode(header[1], validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Malformed basic credentials.") from None
        if (
            not sep
            or not username
            or len(username) > MAX_USERNAME
            or any(c in username + password for c in "\x00\r\n")
        ):
            # No account has such a name (and no database stores a NUL): refused before the
            # sign-in check, which would write the name into its failure records.
            raise exceptions.AuthenticationFailed("Malformed basic credentials.")
        django_request = request._request
        user = authenticate(request=django_request, username=username, password=password)
        if getattr(django_request, "axes_locked_out", False):
            minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
            raise exceptions.AuthenticationFailed(
                f"Too many failed sign-ins for '{username[:150]}' from this address: locked "
                f"for up to {minutes} minutes (an administrator can lift it earlier)."
            )
        if not isinstance(user, User) or not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid user name or password.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="modelgate"'
