"""The maturity metrics governance and the registry answer: lineage, governance, operations and
quality (documentation is the cards app's, cards/maturity.py). Importing this module registers
them. Each answers every model in one query; what each bucket means is in its `buckets`.

Thresholds are settings, read at call time: MATURITY_ACCESS_REVIEW_DAYS,
MATURITY_PRODUCTION_REVIEW_DAYS, MATURITY_MIN_METRICS.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.urls import reverse
from django.utils.http import urlencode

from core.models import AuditEvent
from governance.maturity.catalogue import (
    COMPLETE,
    MISSING,
    PARTIAL,
    Bucket,
    Context,
    Metric,
    ModelRow,
    register,
)
from governance.models import Review, StageHistory
from registry.deployments import (
    DEPLOYED_NOT_APPROVED,
    KINDS,
    PRODUCTION_NOT_DEPLOYED,
    deployment_findings_bulk,
)
from registry.models import (
    Artifact,
    Dataset,
    Deployment,
    ModelVersion,
    ModelVersionMetric,
    PackagingJob,
    RegisteredModel,
    TrainingRunDataset,
)
from registry.services.lineage import is_production_environment

NO_VERSION = "The model has no live version."


def _flag(condition: Q | Exists) -> Case:
    return Case(
        When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()
    )


# --- Where a user fixes things ----------------------------------------------------------------


def model_page(row: ModelRow) -> str:
    return reverse("registry:model-detail", args=[row.name])


def version_page(row: ModelRow) -> str:
    if row.focus_number is None:
        return model_page(row)
    return reverse("registry:version-detail", args=[row.name, row.focus_number])


def admin_model_page(row: ModelRow) -> str:
    return reverse("admin:registry_registeredmodel_change", args=[row.pk])


def access_page(row: ModelRow) -> str:
    return reverse("governance:model-access", args=[row.name])


def request_page(row: ModelRow) -> str:
    query = {"model": row.name, "target": ModelVersion.Stage.PRODUCTION}
    if row.focus_number is not None:
        query["version"] = str(row.focus_number)
    return f"{reverse('governance:request-new')}?{urlencode(query)}"


# --- Lineage ----------------------------------------------------------------------------------


def _focus_lineage(ctx: Context) -> list[dict[str, Any]]:
    """The focus versions with what their training run links, shared by the three lineage
    metrics: two queries, the versions' runs and code refs, then per run (grouped) how many
    of its dataset links are training, evaluation, and of a dataset that lists features."""
    if "lineage" in ctx.extra:
        return ctx.extra["lineage"]  # type: ignore[no-any-return]
    focus = ModelVersion.objects.filter(pk__in=ctx.focus_versions)
    evaluation = [TrainingRunDataset.Role.VALIDATION, TrainingRunDataset.Role.TEST]
    listed = Exists(Dataset.features.through.objects.filter(dataset_id=OuterRef("dataset_id")))
    runs = {
        row["training_run_id"]: row
        for row in TrainingRunDataset.objects.filter(
            training_run__in=focus.filter(training_run__isnull=False).values("training_run_id")
        )
        .values("training_run_id")
        .annotate(
            links=Count("pk"),
            training=Count("pk", filter=Q(role=TrainingRunDataset.Role.TRAINING)),
            evaluation=Count("pk", filter=Q(role__in=evaluation)),
            with_features=Count("pk", filter=Q(listed)),
        )
        .order_by()
    }
    none = {"links": 0, "training": 0, "evaluation": 0, "with_features": 0}
    ctx.extra["lineage"] = rows = [
        {
            "registered_model_id": model_id,
            "training_run_id": run_id,
            "code_ref_id": code_ref_id,
            **runs.get(run_id, none),
        }
        for model_id, run_id, code_ref_id in focus.values_list(
            "registered_model_id", "training_run_id", "training_run__code_ref_id"
        )
    ]
    return rows


def datasets_linked(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    for row in _focus_lineage(ctx):
        if row["training"] and row["evaluation"]:
            out[row["registered_model_id"]] = COMPLETE
        elif row["training"] or row["evaluation"]:
            out[row["registered_model_id"]] = PARTIAL
    return out


def code_ref_linked(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    for row in _focus_lineage(ctx):
        if row["code_ref_id"] is not None:
            out[row["registered_model_id"]] = COMPLETE
        elif row["training_run_id"] is not None:
            out[row["registered_model_id"]] = PARTIAL
    return out


def features_linked(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    for row in _focus_lineage(ctx):
        if row["with_features"]:
            complete = row["with_features"] == row["links"]
            out[row["registered_model_id"]] = COMPLETE if complete else PARTIAL
    return out


# --- Governance -------------------------------------------------------------------------------


def owner_set(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out: dict[int, Bucket] = dict.fromkeys(ctx.rows, MISSING)
    for pk, owner_id, active in models.values_list("pk", "owner_id", "owner__is_active"):
        if owner_id is not None:
            out[pk] = COMPLETE if active else PARTIAL
    return out


def promotions_approved(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    """Every time a version took the production stage: through an applied promotion request
    (approved under the model's policy), or not (a direct move the policy allowed, or a
    placement imported from MLflow, which Modelgate never approved)."""
    out: dict[int, Bucket] = dict.fromkeys(ctx.rows, None)
    rows = (
        StageHistory.objects.filter(
            registered_model__in=models.values("pk"),
            kind=StageHistory.Kind.STAGE,
            name=ModelVersion.Stage.PRODUCTION,
        )
        .values("registered_model_id")
        .annotate(
            total=Count("pk"),
            approved=Count(
                "pk",
                filter=Q(promotion_request__isnull=False, origin=StageHistory.Origin.MODELGATE),
            ),
        )
        .order_by()
    )
    for row in rows:
        if row["approved"] == row["total"]:
            bucket = COMPLETE
        else:
            bucket = PARTIAL if row["approved"] else MISSING
        out[row["registered_model_id"]] = bucket
    return out


def access_reviewed(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    """The newest `access.reviewed` audit event of each model (governance.access)."""
    out: dict[int, Bucket] = dict.fromkeys(ctx.rows, MISSING)
    since = ctx.now - timedelta(days=settings.MATURITY_ACCESS_REVIEW_DAYS)
    rows = (
        AuditEvent.objects.filter(
            action="access.reviewed", registered_model_id__in=models.values("pk")
        )
        .values("registered_model_id")
        .annotate(last=Max("occurred_at"))
        .order_by()
    )
    for row in rows:
        out[row["registered_model_id"]] = COMPLETE if row["last"] >= since else PARTIAL
    return out


# --- Operations -------------------------------------------------------------------------------


def production_reviewed(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    """The newest approving review of a promotion request of the production version."""
    out: dict[int, Bucket] = {
        pk: (MISSING if row.in_production else None) for pk, row in ctx.rows.items()
    }
    since = ctx.now - timedelta(days=settings.MATURITY_PRODUCTION_REVIEW_DAYS)
    rows = (
        Review.objects.filter(
            decision=Review.Decision.APPROVE,
            request__version__in=ctx.focus_versions,
            request__version__stage=ModelVersion.Stage.PRODUCTION,
        )
        .values("request__registered_model_id")
        .annotate(last=Max("created_at"))
        .order_by()
    )
    for row in rows:
        out[row["request__registered_model_id"]] = COMPLETE if row["last"] >= since else PARTIAL
    return out


@dataclass(frozen=True)
class _DeploymentFacts:
    """The models (ids) in each state, shared by the two deployment metrics."""

    # the deployment check's findings (registry.deployments), by kind
    findings: dict[str, set[int]]
    # some deployment of a live version was ever recorded
    recorded: set[int]
    # some deployment is active in a production environment
    serving: set[int]


def _deployments(models: QuerySet[RegisteredModel], ctx: Context) -> _DeploymentFacts:
    """The deployment check (at most five queries) and one grouped query for what was
    recorded and what serves. Asked once per scorecard (two metrics read it)."""
    if "deployments" in ctx.extra:
        return ctx.extra["deployments"]  # type: ignore[no-any-return]
    facts = _DeploymentFacts(
        findings={kind: set() for kind in KINDS}, recorded=set(), serving=set()
    )
    for pk, findings in deployment_findings_bulk(models).items():
        for finding in findings:
            facts.findings[finding.kind].add(pk)
    production_environment = functools.cache(is_production_environment)
    for model_id, environment, status in (
        Deployment.objects.filter(
            version__registered_model__in=models.values("pk"), version__deleted_at__isnull=True
        )
        .values_list("version__registered_model_id", "environment", "status")
        .order_by()
        .distinct()
    ):
        facts.recorded.add(model_id)
        if status == Deployment.Status.ACTIVE and production_environment(environment):
            facts.serving.add(model_id)
    ctx.extra["deployments"] = facts
    return facts


def deployment_recorded(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    facts = _deployments(models, ctx)
    not_deployed = facts.findings[PRODUCTION_NOT_DEPLOYED]
    out: dict[int, Bucket] = {}
    for pk, row in ctx.rows.items():
        if not row.in_production:
            out[pk] = None
        elif pk not in not_deployed:
            out[pk] = COMPLETE
        else:
            out[pk] = PARTIAL if pk in facts.recorded else MISSING
    return out


def deployed_version_approved(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    facts = _deployments(models, ctx)
    not_approved = facts.findings[DEPLOYED_NOT_APPROVED]
    not_deployed = facts.findings[PRODUCTION_NOT_DEPLOYED]
    out: dict[int, Bucket] = {}
    for pk, row in ctx.rows.items():
        if pk in not_approved:
            out[pk] = MISSING
        elif pk not in facts.serving:
            out[pk] = None
        elif row.in_production and pk not in not_deployed:
            out[pk] = COMPLETE
        else:
            out[pk] = PARTIAL
    return out


# --- Quality ----------------------------------------------------------------------------------


def metrics_recorded(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    rows = (
        ModelVersionMetric.objects.filter(version__in=ctx.focus_versions)
        .values("version__registered_model_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        enough = row["n"] >= settings.MATURITY_MIN_METRICS
        out[row["version__registered_model_id"]] = COMPLETE if enough else PARTIAL
    return out


def signature_present(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    rows = (
        ModelVersion.objects.filter(pk__in=ctx.focus_versions)
        .annotate(
            has_inputs=_flag(Q(signature__has_key="inputs")),
            has_outputs=_flag(Q(signature__has_key="outputs")),
            has_example=_flag(Q(input_example__isnull=False)),
        )
        .values("registered_model_id", "has_inputs", "has_outputs", "has_example")
    )
    for row in rows:
        if row["has_inputs"] and row["has_outputs"]:
            out[row["registered_model_id"]] = COMPLETE
        elif row["has_inputs"] or row["has_example"]:
            out[row["registered_model_id"]] = PARTIAL
    return out


# Files the ONNX conversion (and its parity check) starts from.
CONVERTIBLE = (Artifact.Format.PICKLE, Artifact.Format.JOBLIB, Artifact.Format.SKOPS)


def onnx_parity(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    """The newest finished ONNX conversion of the focus version: it succeeds only when the
    ONNX model agrees with scikit-learn within PARITY_MIN_AGREEMENT / PARITY_MAX_DIFF."""
    out: dict[int, Bucket] = dict.fromkeys(ctx.rows, None)
    newest = (
        PackagingJob.objects.filter(
            version=OuterRef("pk"),
            kind=PackagingJob.Kind.CONVERT_ONNX,
            status__in=[PackagingJob.Status.SUCCEEDED, PackagingJob.Status.FAILED],
        )
        .order_by("-created_at", "-pk")
        .values("status")[:1]
    )
    rows = (
        ModelVersion.objects.filter(pk__in=ctx.focus_versions)
        .annotate(
            convertible=Exists(
                Artifact.objects.filter(
                    version=OuterRef("pk"), format__in=CONVERTIBLE, derived=False
                )
            ),
            parity=Subquery(newest, output_field=CharField()),
        )
        .values("registered_model_id", "convertible", "parity")
    )
    for row in rows:
        if not row["convertible"]:
            continue
        out[row["registered_model_id"]] = (
            COMPLETE
            if row["parity"] == PackagingJob.Status.SUCCEEDED
            else MISSING
            if row["parity"] == PackagingJob.Status.FAILED
            else PARTIAL
        )
    return out


def files_cleared(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    """Cleared as the readiness check `packaging` says (registry.services.jobs
    .artifacts_clearance): trusted by an administrator, or the newest inspection of the file's
    bytes completed with the verdict safe. One row per file of the focus versions."""
    out: dict[int, Bucket] = dict.fromkeys(ctx.rows, None)
    inspections = PackagingJob.objects.filter(
        version=OuterRef("version_id"),
        kind=PackagingJob.Kind.INSPECT,
        input_sha256=OuterRef("sha256"),
    ).order_by("-created_at", "-pk")
    rows = (
        Artifact.objects.filter(version__in=ctx.focus_versions)
        .annotate(
            inspection=Subquery(inspections.values("status")[:1], output_field=CharField()),
            verdict=Subquery(
                inspections.annotate(v=KT("result__scan__verdict")).values("v")[:1],
                output_field=CharField(),
            ),
        )
        .values_list("version__registered_model_id", "trusted_at", "inspection", "verdict")
    )
    counts: dict[int, list[int]] = {}
    for model_id, trusted_at, inspection, verdict in rows:
        cleared = trusted_at is not None or (
            inspection == PackagingJob.Status.SUCCEEDED and verdict == "safe"
        )
        tally = counts.setdefault(model_id, [0, 0])
        tally[0] += 1
        tally[1] += int(cleared)
    for model_id, (files, cleared_files) in counts.items():
        out[model_id] = (
            COMPLETE if cleared_files == files else PARTIAL if cleared_files else MISSING
        )
    return out


# --- The catalogue ----------------------------------------------------------------------------

LINEAGE = [
    Metric(
        key="datasets_linked",
        domain="lineage",
        title="Datasets linked",
        buckets={
            COMPLETE: "The training run of the focus version links training data and "
            "evaluation (validation or test) data.",
            PARTIAL: "The training run links datasets of one kind only (training or evaluation).",
            MISSING: "No training run, or a training run without datasets.",
            None: NO_VERSION,
        },
        compute=datasets_linked,
        fix_url=version_page,
        fix_label="Record the training run's datasets (bulk lineage API)",
    ),
    Metric(
        key="code_ref_linked",
        domain="lineage",
        title="Code reference linked",
        buckets={
            COMPLETE: "The training run names the code (repository and commit) it ran.",
            PARTIAL: "A training run is recorded, without its code reference.",
            MISSING: "The focus version has no training run.",
            None: NO_VERSION,
        },
        compute=code_ref_linked,
        fix_url=version_page,
        fix_label="Record the training run's code reference",
    ),
    Metric(
        key="features_linked",
        domain="lineage",
        title="Features linked",
        buckets={
            COMPLETE: "Every dataset of the training run lists the logical features it holds.",
            PARTIAL: "Some datasets list their features, others do not.",
            MISSING: "No dataset of the training run lists its features (or there is none).",
            None: NO_VERSION,
        },
        compute=features_linked,
        fix_url=version_page,
        fix_label="Record the datasets' features",
    ),
]

GOVERNANCE = [
    Metric(
        key="owner_set",
        domain="governance",
        title="Owner set",
        buckets={
            COMPLETE: "The model has an owner with an active account.",
            PARTIAL: "The owner's account is deactivated.",
            MISSING: "Nobody owns the model.",
        },
        compute=owner_set,
        fix_url=admin_model_page,
        fix_label="Set the owner (admin)",
    ),
    Metric(
        key="promotions_approved",
        domain="governance",
        title="Production promotions approved",
        buckets={
            COMPLETE: "Every version that reached production got there through a promotion "
            "request approved under the model's policy.",
            PARTIAL: "Some did; others were moved directly (a policy needing no approval) or "
            "imported from MLflow.",
            MISSING: "No version reached production through an approved request.",
            None: "No version of the model has ever been in production.",
        },
        compute=promotions_approved,
        fix_url=request_page,
        fix_label="Request an approved promotion",
    ),
    Metric(
        key="access_reviewed",
        domain="governance",
        title="Access reviewed",
        buckets={
            COMPLETE: "A manager marked the model's access as reviewed within "
            "MATURITY_ACCESS_REVIEW_DAYS days.",
            PARTIAL: "The last access review is older than that.",
            MISSING: "Nobody ever marked the model's access as reviewed.",
        },
        compute=access_reviewed,
        fix_url=access_page,
        fix_label="Review who has access",
    ),
]

OPERATIONS = [
    Metric(
        key="deployment_recorded",
        domain="operations",
        title="Deployment recorded",
        buckets={
            COMPLETE: "Every production version has an active deployment in a production "
            "environment (PRODUCTION_ENVIRONMENTS).",
            PARTIAL: "Deployments are recorded, but the production version does not serve in "
            "a production environment.",
            MISSING: "No deployment of the model was ever recorded.",
            None: "The model has no version in production.",
        },
        compute=deployment_recorded,
        fix_url=model_page,
        fix_label="Record the deployment (deployments API)",
    ),
    Metric(
        key="production_reviewed",
        domain="operations",
        title="Production version reviewed",
        buckets={
            COMPLETE: "A reviewer approved a promotion of the production version within "
            "MATURITY_PRODUCTION_REVIEW_DAYS days.",
            PARTIAL: "The last approval of the production version is older than that.",
            MISSING: "No reviewer ever approved the production version (moved directly or "
            "imported).",
            None: "The model has no version in production.",
        },
        compute=production_reviewed,
        fix_url=request_page,
        fix_label="Have the production version reviewed",
    ),
    Metric(
        key="deployed_version_approved",
        domain="operations",
        title="Deployed version is the approved one",
        buckets={
            COMPLETE: "The production version serves in production, and only approved versions do.",
            PARTIAL: "Only approved versions serve in production (a protected alias), but not "
            "the production version.",
            MISSING: "A version no longer approved (or deleted) still serves: retire it or "
            "promote it again.",
            None: "Nothing serves in a production environment.",
        },
        compute=deployed_version_approved,
        fix_url=model_page,
        fix_label="Retire the unapproved deployment",
    ),
]

QUALITY = [
    Metric(
        key="metrics_recorded",
        domain="quality",
        title="Metrics recorded",
        buckets={
            COMPLETE: "The focus version records at least MATURITY_MIN_METRICS metrics.",
            PARTIAL: "It records fewer.",
            MISSING: "It records none.",
            None: NO_VERSION,
        },
        compute=metrics_recorded,
        fix_url=version_page,
        fix_label="Log the version's metrics",
    ),
    Metric(
        key="signature_present",
        domain="quality",
        title="Signature present",
        buckets={
            COMPLETE: "The focus version declares its inputs and outputs.",
            PARTIAL: "Only its inputs, or only an input example.",
            MISSING: "Neither a signature nor an input example.",
            None: NO_VERSION,
        },
        compute=signature_present,
        fix_url=version_page,
        fix_label="Add a signature (or run 'infer signature')",
    ),
    Metric(
        key="onnx_parity",
        domain="quality",
        title="ONNX parity passed",
        buckets={
            COMPLETE: "The newest ONNX conversion agreed with scikit-learn (parity passed).",
            PARTIAL: "Not checked yet: no conversion has finished.",
            MISSING: "The newest conversion failed (the ONNX model disagrees, or it could not "
            "be converted).",
            None: "No live version, or no scikit-learn file (pickle, joblib, skops) to convert.",
        },
        compute=onnx_parity,
        fix_url=version_page,
        fix_label="Run 'Convert to ONNX'",
    ),
    Metric(
        key="files_cleared",
        domain="quality",
        title="Files cleared by inspection",
        buckets={
            COMPLETE: "Every file of the focus version was inspected and cleared (or trusted "
            "by an administrator).",
            PARTIAL: "Some files are cleared, others are not (never inspected, inspection "
            "pending or failed, or not safe).",
            MISSING: "No file is cleared.",
            None: "No live version, or a version without files.",
        },
        compute=files_cleared,
        fix_url=version_page,
        fix_label="Inspect the files",
    ),
]

for _metric in (*LINEAGE, *GOVERNANCE, *OPERATIONS, *QUALITY):
    register(_metric)
