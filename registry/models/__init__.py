from registry.models.catalog import (
    Alias,
    Artifact,
    EvaluationResult,
    ModelVersion,
    ModelVersionMetric,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
)
from registry.models.lineage import (
    CodeRef,
    Dataset,
    Deployment,
    FeatureSource,
    LogicalFeature,
    TrainingRun,
    TrainingRunDataset,
)
from registry.models.packaging import PackagingJob

__all__ = [
    "Alias",
    "Artifact",
    "CodeRef",
    "Dataset",
    "Deployment",
    "EvaluationResult",
    "FeatureSource",
    "LogicalFeature",
    "ModelVersion",
    "ModelVersionMetric",
    "ModelVersionTag",
    "PackagingJob",
    "RegisteredModel",
    "RegisteredModelTag",
    "TrainingRun",
    "TrainingRunDataset",
]
