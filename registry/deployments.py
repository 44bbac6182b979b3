"""Deployments as a model's page and API show them, and the deployment check (read side only:
writes are registry.services.lineage's deployment_create and deployment_retire).

The check flags two things:

- `production_not_deployed`: a live version in stage production with no active deployment in a
  production environment (settings.PRODUCTION_ENVIRONMENTS, compared as
  `is_production_environment` does). A production version that serves only in, say, staging is
  flagged too: production traffic is not served by what was approved for it.
- `deployed_not_approved`: an active deployment in a production environment whose version is
  now neither in production nor holding a protected alias (the governor decides, as it does
  when the deployment is recorded). deployment_create refuses unapproved versions there, so
  such a finding means approval was withdrawn later (archived, demoted, its protected alias
  moved away) and the deployment was not retired. Deployments in other environments are not
  reported: any version may serve there (testing a candidate in staging is the point of
  staging), so flagging them would bury the real findings. The one exception is an active
  deployment of a *deleted* version, in any environment: services refuse to delete a deployed
  version, so that row can only come from outside them, and it serves something the registry
  no longer shows.

Retired deployments are history and never flagged.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from core import permissions
from core.errors import NotFound
from core.permissions import AnyUser, Perm
from registry.governed import governor
from registry.models import Alias, Deployment, ModelVersion, RegisteredModel
from registry.services.lineage import is_production_environment

PRODUCTION_NOT_DEPLOYED = "production_not_deployed"
DEPLOYED_NOT_APPROVED = "deployed_not_approved"
KINDS = (PRODUCTION_NOT_DEPLOYED, DEPLOYED_NOT_APPROVED)


@dataclass(frozen=True)
class Finding:
    kind: str
    version: int
    message: str
    deployment_id: int | None = None
    environment: str | None = None
    target: str | None = None


def _production_names() -> str:
    return ", ".join(name.strip() for name in settings.PRODUCTION_ENVIRONMENTS) or "none set"


def deployment_findings_bulk(
    registered_models: QuerySet[RegisteredModel],
) -> dict[int, list[Finding]]:
    """The deployment check for every model of `registered_models` (the caller filters it by
    permission): {model id: findings}, every model a key ([] when all is well), findings sorted
    by version (newest first), then kind, then deployment. At most five queries however many
    models, versions and deployments: the model ids, the production versions, the active
    deployments, the aliases of deployed versions, the policies."""
    return _check(
        registered_models,
        {pk: [] for pk in registered_models.order_by().values_list("pk", flat=True)},
    )


def _check(
    registered_models: QuerySet[RegisteredModel],
    found: dict[int, list[Finding]],
    known: RegisteredModel | None = None,
) -> dict[int, list[Finding]]:
    """Fill `found` (a key per model of `registered_models`). `known`, when the check is about
    that one model, stands in for the rows' own copy of it, so a policy it already remembers
    (governance.policies.policy_for) is not looked up again. Rows are read as plain values:
    the scorecard runs this over every model, and objects are built only for the versions
    whose approval is in question (deployed in production environments, not in stage
    production)."""
    if not found:
        return found
    models = registered_models.order_by().values("pk")
    serving: set[int] = set()  # versions with an active deployment in a production environment
    # live versions deployed there outside stage production: still approved (by an alias)?
    suspects: dict[int, ModelVersion] = {}
    checked: list[tuple[int, str, str, int]] = []  # (deployment, environment, target, version)
    owners: dict[int, RegisteredModel] = {} if known is None else {known.pk: known}
    production_environment = functools.cache(is_production_environment)  # once per name
    for pk, environment, target, version_id, number, stage, deleted_at, model_id, tier in (
        Deployment.objects.filter(
            version__registered_model__in=models, status=Deployment.Status.ACTIVE
        )
        .order_by("pk")
        .values_list(
            "pk",
            "environment",
            "target",
            "version_id",
            "version__version",
            "version__stage",
            "version__deleted_at",
            "version__registered_model_id",
            "version__registered_model__risk_tier",
        )
    ):
        if deleted_at is not None:
            found[model_id].append(
                Finding(
                    kind=DEPLOYED_NOT_APPROVED,
                    version=number,
                    deployment_id=pk,
                    environment=environment,
                    target=target,
                    message=(
                        f"Version {number} was deleted but still serves in "
                        f"'{environment}' at {target}: retire this deployment."
                    ),
                )
            )
        elif production_environment(environment):
            serving.add(version_id)
            if stage == ModelVersion.Stage.PRODUCTION:
                continue  # approved whatever its aliases and policy (approved_for_production)
            if version_id not in suspects:
                owner = owners.setdefault(model_id, RegisteredModel(pk=model_id, risk_tier=tier))
                suspects[version_id] = ModelVersion(
                    pk=version_id, version=number, stage=stage, registered_model=owner
                )
            checked.append((pk, environment, target, version_id))
    if suspects:
        aliases: dict[int, list[str]] = defaultdict(list)
        # The aliases of every version deployed in these models (a subquery, not a list of
        # ids that could outgrow the database's parameter limit), kept for the suspects.
        for version_id, name in (
            Alias.objects.filter(
                version__registered_model__in=models,
                version__deployments__status=Deployment.Status.ACTIVE,
            )
            .order_by()
            .distinct()
            .values_list("version_id", "name")
        ):
            if version_id in suspects:
                aliases[version_id].append(name)
        for version in suspects.values():
            version.alias_names = sorted(aliases[version.pk])  # type: ignore[attr-defined]
        approved = governor().approved_versions(suspects.values())
        for pk, environment, target, version_id in checked:
            version = suspects[version_id]
            if version.pk in approved:
                continue
            found[version.registered_model_id].append(
                Finding(
                    kind=DEPLOYED_NOT_APPROVED,
                    version=version.version,
                    deployment_id=pk,
                    environment=environment,
                    target=target,
                    message=(
                        f"Version {version.version} serves in production environment "
                        f"'{environment}' at {target} but is no longer approved: it is "
                        f"not in production (stage: {version.get_stage_display().lower()}) and "
                        "holds no protected alias. Retire this deployment or promote the "
                        "version again."
                    ),
                )
            )
    for version_id, model_id, number in ModelVersion.objects.filter(
        registered_model__in=models,
        stage=ModelVersion.Stage.PRODUCTION,
        deleted_at__isnull=True,
    ).values_list("pk", "registered_model_id", "version"):
        if version_id not in serving:
            found[model_id].append(
                Finding(
                    kind=PRODUCTION_NOT_DEPLOYED,
                    version=number,
                    message=(
                        f"Version {number} is in production but has no active deployment in a "
                        f"production environment ({_production_names()})."
                    ),
                )
            )
    for findings in found.values():
        findings.sort(key=lambda f: (-f.version, KINDS.index(f.kind), f.deployment_id or 0))
    return found


def deployment_findings(*, user: AnyUser, registered_model: RegisteredModel) -> list[Finding]:
    """The deployment check for one model the user may view (NotFound otherwise): the answer
    deployment_findings_bulk gives for it, in as many queries or one fewer when the model's
    policy was looked up already on this instance."""
    if not permissions.has(user, Perm.VIEW, registered_model):
        raise NotFound(
            f"Registered model '{registered_model.name}' not found.",
            code="registered_model_not_found",
        )
    return _check(
        RegisteredModel.objects.filter(pk=registered_model.pk),
        {registered_model.pk: []},
        known=registered_model,
    )[registered_model.pk]


def model_deployment_list(
    *, user: AnyUser, registered_model: RegisteredModel, status: str | None = None
) -> QuerySet[Deployment]:
    """The deployments of a model's live versions as `user` may see them, newest first, with
    what their rows show (version, model, who deployed and retired) in the same query."""
    qs = permissions.visible(
        user, Deployment.objects.filter(version__registered_model=registered_model)
    )
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("version__registered_model", "deployed_by", "retired_by").order_by(
        "-deployed_at", "-pk"
    )


@dataclass(frozen=True)
class DeploymentOverview:
    """What the model page's Deployments section shows."""

    # Active deployments by version (newest first), environment and target, each with the
    # findings that name it.
    active: list[tuple[Deployment, list[Finding]]]
    retired: list[Deployment]  # most recently retired first, at most RETIRED_SHOWN
    retired_total: int
    findings: list[Finding]


RETIRED_SHOWN = 50


def deployment_overview(*, user: AnyUser, registered_model: RegisteredModel) -> DeploymentOverview:
    """Active and retired deployments and the findings of one model the user may view
    (NotFound otherwise); a fixed number of queries however many deployments it has."""
    findings = deployment_findings(user=user, registered_model=registered_model)
    flagged: dict[int, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.deployment_id is not None:
            flagged[finding.deployment_id].append(finding)
    rows = model_deployment_list(user=user, registered_model=registered_model)
    active = rows.filter(status=Deployment.Status.ACTIVE).order_by(
        "-version__version", "environment", "target", "pk"
    )
    retired_rows = rows.filter(status=Deployment.Status.RETIRED)
    retired = list(retired_rows.order_by("-retired_at", "-pk")[:RETIRED_SHOWN])
    total = len(retired) if len(retired) < RETIRED_SHOWN else retired_rows.count()
    return DeploymentOverview(
        active=[(d, flagged.get(d.pk, [])) for d in active],
        retired=retired,
        retired_total=total,
        findings=findings,
    )
