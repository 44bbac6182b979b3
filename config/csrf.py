"""The page a refused form (CSRF) gets: still a 403, but it says why when the likely cause is
secure cookies on a plain-HTTP site, which is how a production install tried over http fails."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    secure_cookies_over_http = not request.is_secure() and (
        settings.CSRF_COOKIE_SECURE or settings.SESSION_COOKIE_SECURE
    )
    return render(
        request,
        "403_csrf.html",
        status=403,
        context={
            "reason": reason,
            "no_cookie": reason == REASON_NO_CSRF_COOKIE,
            "secure_cookies_over_http": secure_cookies_over_http,
        },
    )
