"""Start the test provider: migrate its own SQLite file, create its users and the Modelgate
client from OIDC_PROVIDER_SETUP (JSON), then serve on OIDC_PROVIDER_ADDRESS until stopped.

    OIDC_PROVIDER_DIR=... OIDC_PROVIDER_ISSUER=http://127.0.0.1:PORT/o \
    OIDC_PROVIDER_SETUP='{"users": [...], "client": {...}}' \
    OIDC_PROVIDER_ADDRESS=127.0.0.1:PORT python -m tests.oidc_provider
"""

from __future__ import annotations

import json
import os

import django


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    setup = json.loads(os.environ["OIDC_PROVIDER_SETUP"])
    for user in setup["users"]:
        User.objects.create_user(user["username"], email=user.get("email", ""),
                                 password=user["password"],
                                 first_name=user.get("first_name", ""),
                                 last_name=user.get("last_name", ""))
    client = setup["client"]
    Application.objects.create(
        name="Modelgate", client_id=client["client_id"], client_secret=client["client_secret"],
        redirect_uris=client["redirect_uri"], client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm=Application.RS256_ALGORITHM, skip_authorization=False)
    call_command("runserver", os.environ["OIDC_PROVIDER_ADDRESS"], use_reloader=False,
                 skip_checks=True)


if __name__ == "__main__":
    main()
