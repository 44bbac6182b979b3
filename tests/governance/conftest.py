"""Fixtures shared by the governance tests: an audit history, and the real OpenID Connect
provider with Modelgate configured for it (tests/governance/oidc_support.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from core.models import AuditEvent
from registry import services
from tests.factories import actor_for, make_model
from tests.governance.oidc_support import idp, mapped, oidc_provider  # noqa: F401  (fixtures)


@pytest.fixture
def history(data_scientist: User) -> list[AuditEvent]:
    """A few events from ordinary changes (roles_sync wrote the first ones), in order."""
    registered_model = make_model(data_scientist, "chained")
    for i in range(3):
        services.registered_model_tag_set(
            actor=actor_for(data_scientist),
            registered_model=registered_model,
            key=f"k{i}",
            value=str(i),
        )
    return list(AuditEvent.objects.order_by("sequence"))
