"""Start the test provider: migrate its own SQLite file, create its users and the Modelgate
client from OIDC_PROVIDER_SETUP (JSON), then serve on OIDC_PROVIDER_ADDRESS until stopped.

    OIDC_PROVIDER_DIR=... OIDC_PROVIDER_ISSUER=http://127.0.0.1:PORT/o \
    OIDC_PROVIDER_SETUP='{"users": [...], "client": {...}}' \
    OIDC_PROVIDER_ADDRESS=127.0.0.1:PORT python -m tests.oidc_provider

With OIDC_PROVIDER_CERTFILE and OIDC_PROVIDER_KEYFILE (PEM) it serves HTTPS through gunicorn
instead of runserver: Modelgate with DEBUG off accepts only an https:// issuer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import django


def _serve_tls(address: str, certfile: str, keyfile: str) -> None:
    """gunicorn's documented custom application, serving the provider's WSGI app."""
    from django.core.wsgi import get_wsgi_application
    from django.db import connections
    from gunicorn.app.base import BaseApplication

    connections.close_all()  # the worker is forked; it opens its own SQLite connection

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in {
                "bind": address,
                "certfile": certfile,
                "keyfile": keyfile,
                "workers": 1,
                "threads": 4,
                "loglevel": "warning",
            }.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return get_wsgi_application()

    Server().run()


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    setup = json.loads(os.environ["OIDC_PROVIDER_SETUP"])
    for user in setup["users"]:
        User.objects.create_user(
            user["username"],
            email=user.get("email", ""),
            password=user["password"],
            first_name=user.get("first_name", ""),
            last_name=user.get("last_name", ""),
        )
    client = setup["client"]
    Application.objects.create(
        name="Modelgate",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        redirect_uris=client["redirect_uri"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=False,
    )
    certfile, keyfile = (
        os.environ.get("OIDC_PROVIDER_CERTFILE"),
        os.environ.get("OIDC_PROVIDER_KEYFILE"),
    )
    if certfile and keyfile:
        _serve_tls(os.environ["OIDC_PROVIDER_ADDRESS"], certfile, keyfile)
    else:
        call_command(
            "runserver", os.environ["OIDC_PROVIDER_ADDRESS"], use_reloader=False, skip_checks=True
        )


if __name__ == "__main__":
    main()
