"""The provider's claims: profile and e-mail from its users, group memberships and whether
the e-mail counts as verified from a JSON file the tests rewrite between sign-ins
(OIDC_PROVIDER_DIR/profiles.json: {"username": {"groups": [...], "email_verified": true}})."""

from __future__ import annotations

import json
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator

from tests.oidc_provider.settings import DIR


class GroupsValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        profiles = json.loads((DIR / "profiles.json").read_text())
        profile = profiles.get(user.username, {})
        return {
            "preferred_username": user.username,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "email": user.email,
            "email_verified": profile.get("email_verified", True),
            "groups": profile.get("groups", []),
        }
