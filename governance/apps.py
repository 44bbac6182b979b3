from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # system checks; promotion requests and stage history inherit their model's grants
        import governance.tasks  # noqa: F401 - its Celery tasks, known by name in every process
        from core import permissions
        from governance import checks  # noqa: F401
        from governance.models import PromotionRequest, StageHistory
        from governance.roles import defaults_sync_after_migrate

        permissions.register_scoped(PromotionRequest, "registered_model")
        permissions.register_scoped(StageHistory, "registered_model")

        # Sent per app after `migrate`; governance comes after registry, so the permissions
        # the roles hold exist by the time this app's turn comes.
        post_migrate.connect(
            defaults_sync_after_migrate, sender=self, dispatch_uid="governance.defaults_sync"
        )
