"""OpenID Connect sign-in (mozilla-django-oidc) beside local accounts.

Off unless ``OIDC_RP_CLIENT_ID`` is set: then the login page shows no button and every URL
under /oidc/ answers 404. Settings are read at call time. The library runs the
authorization-code flow with state, nonce and PKCE; this module adds what it leaves out:
- endpoints are discovered from ``OIDC_OP_ISSUER`` (cached for an hour); explicit ones win;
- the ID token must be signed with ``OIDC_RP_SIGN_ALGO`` (an asymmetric algorithm: never
  "none" nor a shared secret) by a key from the JWKS, and name this issuer, this client as
  its audience (and as ``azp`` when that is present), an expiry and an issue time (the library
  checks neither issuer nor audience);
- an https issuer's endpoints, discovered ones too, must be https (settings refuse an http
  issuer or endpoint with DEBUG off);
- the userinfo answer must be about the ID token's subject;
- the account and its roles come from governance.sso, which audits every change;
- a state this session was not given, used already or older than ``OIDC_STATE_MAX_AGE``, an
  error from the provider, an answer that does not verify or a provider out of reach is a
  message on the login page and an ``auth.sso_failed`` audit event, never a 500; an error
  from the provider logs nobody out (anyone's page can send the browser there).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from core import audit
from core.actors import Actor
from core.errors import DomainError
from governance import sso
from governance.sso import SsoClaims, SsoRefused

logger = logging.getLogger(__name__)

DISCOVERY_CACHE_SECONDS = 3600
# Clock difference tolerated between the provider and Modelgate when checking exp and iat.
CLOCK_LEEWAY = 60


def enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID)


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


def provider() -> Provider:
    """The provider's endpoints: the explicit settings, the rest from discovery."""
    endpoints = {
        "authorization_endpoint": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_OP_TOKEN_ENDPOINT,
        "userinfo_endpoint": settings.OIDC_OP_USER_ENDPOINT,
        "jwks_uri": settings.OIDC_OP_JWKS_ENDPOINT,
    }
    if not all(endpoints.values()):
        document = _discover(settings.OIDC_OP_ISSUER)
        found = {key: value or document.get(key) for key, value in endpoints.items()}
        endpoints = {key: value for key, value in found.items() if isinstance(value, str) and value}
        if len(endpoints) < len(found):
            raise SsoRefused(
                "The identity provider's configuration is incomplete.",
                reason="provider_configuration",
            )
    # Settings refuse an http:// issuer or endpoint with DEBUG off; an https issuer's
    # discovery must not bring one back (codes, tokens or the keys in clear text).
    if settings.OIDC_OP_ISSUER.startswith("https://") and not all(
        value.startswith("https://") for value in endpoints.values()
    ):
        raise SsoRefused(
            "The identity provider's configuration names a plain-http endpoint.",
            reason="provider_configuration",
        )
    return Provider(issuer=settings.OIDC_OP_ISSUER, **endpoints)


def _discover(issuer: str) -> dict[str, Any]:
    key = "modelgate:oidc:discovery:" + hashlib.sha256(issuer.encode()).hexdigest()
    document = cache.get(key)
    if document is not None:
        return document
    try:
        response = requests.get(
            issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT
        )
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("OpenID Connect discovery at %s failed: %s", issuer, str(exc)[:300])
        raise SsoRefused(
            "The identity provider cannot be reached; try again later.",
            reason="provider_unreachable",
        ) from None
    # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was
    # fetched for, or someone else's endpoints could be substituted.
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise SsoRefused(
            "The identity provider's configuration names another issuer.",
            reason="provider_configuration",
        )
    cache.set(key, document, DISCOVERY_CACHE_SECONDS)
    return document


class OidcBackend(OIDCAuthenticationBackend):
    """Authenticates only the callback's code exchange; a password login passes it by."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django loads every backend for every login, local ones included; the library's
        # constructor would read endpoints that do not exist while single sign-on is off.
        self.UserModel = get_user_model()

    def _configure(self) -> None:
        config = provider()
        self.issuer = config.issuer
        self.OIDC_OP_TOKEN_ENDPOINT = config.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = config.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = config.jwks_uri
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        # Only the callback view passes exactly these: a password login whose query string
        # carries a code and a state must never reach the token endpoint.
        if request is None or not enabled() or set(kwargs) != {"nonce", "code_verifier"}:
            return None
        self._configure()
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id: Any) -> User | None:
        # The library's get_user would keep a deactivated account's session alive.
        return ModelBackend.get_user(self, user_id)

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The ID token (with a nonce) or a signed userinfo answer (without). The library
        fetches the JWKS only for RS* and ES* and verifies anything else, PS* included, with
        the client secret, so no PS* token ever verified: every algorithm Modelgate accepts is
        asymmetric, and the key always comes from the JWKS."""
        self._verifying_id_token = "nonce" in kwargs
        payload = self.get_payload_data(token, self.retrieve_matching_jwk(token))
        nonce = kwargs.get("nonce")
        if self._verifying_id_token and (not nonce or payload.get("nonce") != nonce):
            raise SsoRefused(
                "The identity provider's token was not issued for this sign-in.",
                reason="token_nonce",
            )
        return payload

    def get_payload_data(self, token: str | bytes, key: Any) -> dict[str, Any]:
        """Signature, issuer, audience and times, with the one configured algorithm."""
        algorithm = self.OIDC_RP_SIGN_ALGO
        if jwt.get_unverified_header(token).get("alg") != algorithm:
            raise SsoRefused(
                "The identity provider's token is not signed as configured.",
                reason="token_algorithm",
            )
        id_token = getattr(self, "_verifying_id_token", True)
        # A JWK without "alg" is bound to its key type's default (RS256 for RSA) by PyJWT;
        # the algorithm is the configured one, checked above, so verify with the bare key.
        if isinstance(key, jwt.PyJWK):
            key = key.key
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.OIDC_RP_CLIENT_ID if id_token else None,
                leeway=CLOCK_LEEWAY,
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"] if id_token else ["sub"],
                    "verify_aud": id_token,
                },
            )
        except (jwt.PyJWTError, TypeError) as exc:  # TypeError: a key of another type
            raise SsoRefused(
                "The identity provider's token did not verify.",
                reason=f"token_{type(exc).__name__}"[:64],
            ) from None
        # OpenID Connect Core 1.0, 3.1.3.7: with several audiences azp must be present, and
        # whenever it is present it must be this client.
        audiences = payload.get("aud")
        several = isinstance(audiences, list) and len(audiences) > 1
        if (
            id_token
            and (several or "azp" in payload)
            and payload.get("azp") != self.OIDC_RP_CLIENT_ID
        ):
            raise SsoRefused(
                "The identity provider's token was issued to another client.", reason="token_azp"
            )
        return payload

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 1.0, section 5.3.2: the userinfo answer's sub must be the ID
        # token's, or it may describe someone else.
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SsoRefused(
                "The identity provider's user information is about someone else.",
                reason="userinfo_subject",
            )
        claims = SsoClaims.from_claims({**userinfo, **payload})  # the signed token wins
        actor = Actor.from_request(self.request)
        return sso.sso_sign_in(
            claims=claims, request_id=actor.request_id, client_address=actor.client_address
        )


def _failed(request: HttpRequest, reason: str, message: str) -> HttpResponse:
    audit.record_refusal(
        actor=Actor.from_request(request),
        action="auth.sso_failed",
        details={"reason": reason, "path": request.path[:300]},
    )
    messages.error(request, f"Single sign-on failed: {message}")
    return redirect(settings.LOGIN_URL)


class OidcLoginView(OIDCAuthenticationRequestView):
    """Redirects to the provider with a fresh state, nonce and PKCE challenge."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # settings are read per request, in get()

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider().authorization_endpoint
        except SsoRefused as exc:
            return _failed(request, exc.reason, exc.message)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back: checks the state, then the library exchanges the code
    (through OidcBackend) and logs the user in."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404
        if request.GET.get("error"):
            # The library would log out whoever is signed in: any page could do that with an
            # <img> pointing here (logging out is otherwise POST only). Forget the state, if
            # this session was given it, so it cannot be used again; nothing else.
            states, state = request.session.get("oidc_states"), request.GET.get("state")
            if isinstance(states, dict) and state in states:
                del states[state]
                request.session.modified = True
            return _failed(request, "provider_error", "the identity provider refused the sign-in.")
        state, code = request.GET.get("state"), request.GET.get("code")
        if not state or not code:
            return _failed(request, "incomplete", "the answer was incomplete.")
        states = request.session.get("oidc_states")
        if not isinstance(states, dict):
            states = {}  # no sign-in started here: the state is unknown
        entry = states.get(state)
        if not isinstance(entry, dict):
            return _failed(
                request,
                "state_unknown",
                "this sign-in was not started here or was used already; please start again.",
            )
        added_on = entry.get("added_on")
        if (
            not isinstance(added_on, int | float)
            or time.time() - added_on >= settings.OIDC_STATE_MAX_AGE
        ):
            del states[state]
            request.session.modified = True
            return _failed(request, "state_expired", "it took too long; please start again.")
        try:
            return super().get(request)
        except (SsoRefused, DomainError) as exc:
            reason = exc.reason if isinstance(exc, SsoRefused) else exc.code
            return _failed(request, reason, exc.message)
        except (
            SuspiciousOperation,
            jwt.PyJWTError,
            requests.RequestException,
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            # A token endpoint error, a JWKS without the key, a malformed answer.
            logger.warning("Single sign-on failed: %s: %s", type(exc).__name__, str(exc)[:300])
            return _failed(
                request,
                "provider_response",
                "the identity provider's answer could not be verified.",
            )

    def login_success(self) -> HttpResponse:
        response = super().login_success()  # redirects to oidc_login_next, read once
        self.request.session.pop("oidc_login_next", None)
        return response

    def login_failure(self) -> HttpResponse:
        self.request.session.pop("oidc_login_next", None)
        return _failed(self.request, "not_signed_in", "the sign-in did not complete.")


urlpatterns = [
    path("authenticate/", OidcLoginView.as_view(), name="oidc_authentication_init"),
    path("callback/", OidcCallbackView.as_view(), name="oidc_authentication_callback"),
]
