from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # system checks; promotion requests and stage history inherit their model's grants
        import governance.tasks  # noqa: F401 - its Celery tasks, known by name in every process
        from core import permissions
        from governance import checks, webhooks  # noqa: F401
        from governance import panels as governance_panels
        from governance.governor import GOVERNANCE
        from governance.models import PromotionRequest, StageHistory
        from governance.roles import defaults_sync_after_migrate
        from registry import governed
        from registry import panels as registry_panels
        from registry import signals as registry_signals

        permissions.register_scoped(PromotionRequest, "registered_model")
        permissions.register_scoped(StageHistory, "registered_model")
        # the registry asks governance before approvals-gated moves and changes to sealed
        # versions, and tells it what moved (stage history)
        governed.install(GOVERNANCE)
        registry_panels.contribute("home", governance_panels.home)
        registry_panels.contribute("model", governance_panels.model)
        registry_panels.contribute("version", governance_panels.version)
        registry_panels.contribute("compliance", governance_panels.compliance_report)
        registry_signals.sweeping.connect(webhooks.swept, dispatch_uid="governance.sweep")

        # Sent per app after `migrate`; governance comes after registry, so the permissions
        # the roles hold exist by the time this app's turn comes.
        post_migrate.connect(
            defaults_sync_after_migrate, sender=self, dispatch_uid="governance.defaults_sync"
        )
