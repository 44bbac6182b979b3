from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # system checks, signal receivers, token scheme
        from governance import checks, refusals, schema  # noqa: F401
        from governance.roles import defaults_sync_after_migrate

        # Sent per app after `migrate`; governance comes after registry, so the permissions
        # the roles hold exist by the time this app's turn comes.
        post_migrate.connect(
            defaults_sync_after_migrate, sender=self, dispatch_uid="governance.defaults_sync"
        )
