from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # system checks, signal receivers, token scheme
        from governance import checks, refusals, schema  # noqa: F401
