"""The login page's single sign-on button: drawn only while single sign-on is configured."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse

from governance import oidc

register = template.Library()


@register.inclusion_tag("registration/_sso_button.html")
def sso_button(next_url: str = "") -> dict[str, object]:
    if not oidc.enabled():
        return {"enabled": False}
    url = reverse("oidc_authentication_init")
    if next_url:
        url += "?" + urlencode({"next": next_url})  # the library checks it is a local URL
    return {"enabled": True, "url": url, "provider_name": settings.OIDC_PROVIDER_NAME}
