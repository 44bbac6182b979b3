from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        import registry.tasks  # noqa: F401 - its Celery tasks, known by name in every process
        from core import permissions
        from registry import lookups
        from registry.models import (
            Alias,
            Artifact,
            CodeRef,
            Dataset,
            Deployment,
            FeatureSource,
            LogicalFeature,
            ModelVersion,
            ModelVersionMetric,
            ModelVersionTag,
            PackagingJob,
            RegisteredModel,
            RegisteredModelTag,
            TrainingRun,
        )

        lookups.register()
        # The registered model is the unit of permissions; everything under it inherits its
        # grants (path to the model, path to the version for soft deletion).
        permissions.register_scope(RegisteredModel, version=ModelVersion)
        permissions.register_scoped(RegisteredModelTag, "registered_model")
        permissions.register_scoped(ModelVersion, "registered_model", "")
        permissions.register_scoped(Alias, "registered_model", "version")
        for child in (ModelVersionTag, ModelVersionMetric, Artifact, Deployment, PackagingJob):
            permissions.register_scoped(child, "version__registered_model", "version")
        # Lineage records are visible through the versions trained from them.
        permissions.register_lineage(TrainingRun, "model_versions")
        permissions.register_lineage(CodeRef, "training_runs__model_versions")
        permissions.register_lineage(Dataset, "training_runs__model_versions")
        permissions.register_lineage(LogicalFeature, "datasets__training_runs__model_versions")
        permissions.register_lineage(
            FeatureSource, "features__datasets__training_runs__model_versions"
        )
