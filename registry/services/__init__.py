"""The registry's write side: every state change goes through one of these functions."""

from registry.services.aliases import alias_delete, alias_set
from registry.services.artifacts import (
    artifact_copy,
    artifact_open,
    artifact_trust,
    artifact_upload,
)
from registry.services.jobs import job_cancel, job_start
from registry.services.lineage import (
    code_ref_create,
    dataset_create,
    deployment_create,
    deployment_retire,
    feature_source_create,
    logical_feature_create,
    training_run_create,
)
from registry.services.lineage_bulk import lineage_register
from registry.services.registered_models import (
    registered_model_create,
    registered_model_delete,
    registered_model_purge,
    registered_model_restore,
    registered_model_tag_delete,
    registered_model_tag_set,
    registered_model_update,
)
from registry.services.versions import (
    version_create,
    version_delete,
    version_evaluations_log,
    version_metrics_log,
    version_purge,
    version_restore,
    version_stage_set,
    version_tag_delete,
    version_tag_set,
    version_update,
)

__all__ = [
    "alias_delete",
    "alias_set",
    "artifact_copy",
    "artifact_open",
    "artifact_trust",
    "artifact_upload",
    "code_ref_create",
    "dataset_create",
    "deployment_create",
    "deployment_retire",
    "feature_source_create",
    "job_cancel",
    "job_start",
    "lineage_register",
    "logical_feature_create",
    "registered_model_create",
    "registered_model_delete",
    "registered_model_purge",
    "registered_model_restore",
    "registered_model_tag_delete",
    "registered_model_tag_set",
    "registered_model_update",
    "training_run_create",
    "version_create",
    "version_delete",
    "version_evaluations_log",
    "version_metrics_log",
    "version_purge",
    "version_restore",
    "version_stage_set",
    "version_tag_delete",
    "version_tag_set",
    "version_update",
]
