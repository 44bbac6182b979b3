"""The permission matrix: every route and method of the project × every role × a model the
user was granted and one they were not → the expected outcome, written down here independently
of core/permissions.py. A route or method missing from MATRIX fails
`test_every_route_is_in_the_matrix`, so an endpoint cannot land without a permission row.

Users: for each role, one holding the role's permissions *per model* on "granted" only; an
outsider with nothing; an administrator (superuser); and anonymous. Rows that need a global
permission also run with users holding each role globally (the role groups).

Lineage: each model has its own chain (feature source → feature → dataset → training run, with
code), named after it, and one chain is shared by both models' first versions. A record is
visible as far as the versions it leads to; a role's view grant is the whole catalogue.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from core import permissions
from core.actors import Actor
from core.permissions import Perm
from governance import promotions
from governance.roles import ROLES
from registry import services
from registry.models import Artifact, PackagingJob, RegisteredModel
from registry.services.artifacts import read_chunks
from tests.factories import SIGNATURE, UserFactory, superuser

pytestmark = pytest.mark.django_db

ROLE_PERMS: dict[str, set[Perm]] = {
    "viewer": {Perm.VIEW},
    "data scientist": {Perm.VIEW, Perm.CHANGE},
    "ml engineer": {Perm.VIEW, Perm.CHANGE, Perm.REQUEST_PROMOTION},
    "reviewer": {Perm.VIEW, Perm.APPROVE_PROMOTION},
    "admin": set(Perm),
}
MODELS = ("granted", "hidden")
# A 404 an allowed user may legitimately get (the thing asked for does not exist in the world).
LEGIT_404 = {"no_rollback_target"}


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    # model:<perm>  — on the model in the URL or body; hidden → 404, lacking perm → 403
    # global:<codename> — a role-wide permission (role groups); per-model grants do not count
    # list          — any signed-in user; results never name a model they may not view
    # lineage       — a lineage record of the model: visible with view on the model (or a
    #                 role's view grant, the whole catalogue), else 404; never names the other
    # cancel        — the requester or a manager of the model
    # public        — anyone, signed in or not
    # sso-off       — single sign-on routes: 404 for everyone while it is not configured
    # staff         — Django's admin site (staff login; model rows scoped by ModelScoped)
    rule: str
    body: dict[str, Any] | None = None
    page: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


V = "api/v1/models/<mname:name>/versions/<int:number>/"
MLR = "api/2.0/mlflow/registered-models/"
MLV = "api/2.0/mlflow/model-versions/"
MLN = {"name": "{model}"}
MLNV = {"name": "{model}", "version": "1"}
BUNDLE = {"path": "{bundle}"}
M = "api/v1/models/<mname:name>/"
MATRIX = [
    Row("*", "admin/", "staff"),
    Row("GET", "login/", "public", page=True),
    Row("POST", "login/", "public", page=True),
    Row("PUT", "login/", "public", page=True),  # Django form views answer PUT like POST
    Row("POST", "logout/", "public", page=True),
    # Single sign-on answers 404 to everyone while it is off, as here; with it on
    # (tests/governance/test_oidc.py) a sign-in reaches only the account the provider vouches for.
    Row("GET", "oidc/authenticate/", "sso-off", page=True),
    Row("GET", "oidc/callback/", "sso-off", page=True),
    # Signed-in users only, unless API_DOCS_PUBLIC (tests/test_security_headers.py)
    Row("GET", "api/schema/", "list"),
    Row("GET", "api/docs/", "list", page=True),
    Row("GET", "", "list", page=True),
    Row("GET", "models/", "list", page=True),
    Row("GET", "models/<mname:name>/compare/", "model:view_registeredmodel", page=True),
    Row("GET", "models/<mname:name>/access/", "model:manage_access", page=True),
    Row("GET", "models/<mname:name>/compliance/", "model:view_registeredmodel", page=True),
    Row(
        "POST",
        "models/<mname:name>/access/",
        "model:manage_access",
        {"who": "nobody", "perm": "view_registeredmodel", "action": "grant"},
        page=True,
    ),
    Row("GET", "inbox/", "list", page=True),
    Row("GET", "requests/", "list", page=True),
    Row("GET", "audit/", "list", page=True),
    Row("GET", "requests/new/", "model:request_promotion", page=True, extra={"model": "{model}"}),
    Row(
        "POST",
        "requests/new/",
        "model:request_promotion",
        {"model": "{model}", "version": "2", "target": "staging"},
        page=True,
    ),
    Row(
        "GET",
        "requests/new/checks/",
        "model:view_registeredmodel",
        page=True,
        extra={"model": "{model}", "version": "1", "target": "production"},
    ),
    Row("GET", "requests/<int:pk>/", "model:view_registeredmodel", page=True),
    Row(
        "POST",
        "requests/<int:pk>/review/",
        "model:approve_promotion",
        {"decision": "approve"},
        page=True,
    ),
    Row("POST", "requests/<int:pk>/cancel/", "cancel", page=True),
    Row("POST", "requests/<int:pk>/apply/", "model:request_promotion", page=True),
    Row("GET", "models/<mname:name>/", "model:view_registeredmodel", page=True),
    Row(
        "GET", "models/<mname:name>/versions/<int:number>/", "model:view_registeredmodel", page=True
    ),
    Row(
        "GET",
        "models/<mname:name>/versions/<int:number>/artifacts/<int:artifact_id>/",
        "model:view_registeredmodel",
        page=True,
    ),
    Row(
        "POST",
        "models/<mname:name>/versions/<int:number>/jobs/",
        "model:change_registeredmodel",
        {"kind": "inspect"},
        page=True,
    ),
    Row(
        "GET",
        "models/<mname:name>/versions/<int:number>/card/",
        "model:view_registeredmodel",
        page=True,
    ),
    Row(
        "GET",
        "models/<mname:name>/versions/<int:number>/card/edit/",
        "model:change_registeredmodel",
        page=True,
    ),
    Row(
        "POST",
        "models/<mname:name>/versions/<int:number>/card/edit/",
        "model:change_registeredmodel",
        page=True,
    ),
    Row(
        "GET",
        "models/<mname:name>/versions/<int:number>/card/history/",
        "model:view_registeredmodel",
        page=True,
    ),
    Row(
        "POST",
        "models/<mname:name>/versions/<int:number>/card/submit/",
        "model:change_registeredmodel",
        page=True,
    ),
    Row(
        "POST",
        "models/<mname:name>/versions/<int:number>/card/review/",
        "model:approve_promotion",
        page=True,
    ),
    Row(
        "POST",
        "models/<mname:name>/versions/<int:number>/card/revisions/<int:revision>/restore/",
        "model:change_registeredmodel",
        page=True,
    ),
    Row(
        "POST",
        "models/<mname:name>/versions/<int:number>/card/import/",
        "model:change_registeredmodel",
        page=True,
    ),
    Row(
        "GET",
        "models/<mname:name>/versions/<int:number>/card/export.<str:file_format>",
        "model:view_registeredmodel",
        page=True,
    ),
    Row("GET", "api/v1/models/", "list"),
    Row("POST", "api/v1/models/", "global:add_registeredmodel", {"name": "brand-new"}),
    Row("GET", M, "model:view_registeredmodel"),
    Row("PATCH", M, "model:change_registeredmodel", {"description": "new"}),
    Row("DELETE", M, "model:delete_registeredmodel"),
    Row("PUT", f"{M}tags/<str:key>/", "model:change_registeredmodel", {"value": "v"}),
    Row("DELETE", f"{M}tags/<str:key>/", "model:change_registeredmodel"),
    Row("GET", f"{M}aliases/", "model:view_registeredmodel"),
    Row("PUT", f"{M}aliases/<str:alias>/", "model:change_registeredmodel", {"version": 1}),
    Row("DELETE", f"{M}aliases/<str:alias>/", "model:change_registeredmodel"),
    Row("GET", f"{M}compare/", "model:view_registeredmodel", extra={"versions": "1,2"}),
    Row("GET", f"{M}resolve/", "model:view_registeredmodel", extra={"alias": "champion"}),
    Row("GET", f"{M}versions/", "model:view_registeredmodel"),
    Row("POST", f"{M}versions/", "model:change_registeredmodel", {"description": "v"}),
    Row("GET", V, "model:view_registeredmodel"),
    Row("PATCH", V, "model:change_registeredmodel", {"description": "better"}),
    Row("DELETE", V, "model:delete_registeredmodel"),
    Row("POST", f"{V}stage/", "model:change_registeredmodel", {"stage": "archived"}),
    Row("PUT", f"{V}tags/<str:key>/", "model:change_registeredmodel", {"value": "v"}),
    Row("DELETE", f"{V}tags/<str:key>/", "model:change_registeredmodel"),
    Row("POST", f"{V}metrics/", "model:change_registeredmodel", {"metrics": {"f1": 0.5}}),
    Row("GET", f"{V}evaluations/", "model:view_registeredmodel"),
    Row(
        "POST",
        f"{V}evaluations/",
        "model:change_registeredmodel",
        {
            "evaluations": [
                {
                    "name": "by_region",
                    "kind": "slices",
                    "data": {"metric": "auc", "slices": [{"slice": "eu", "value": 0.8}]},
                }
            ]
        },
    ),
    Row(
        "POST",
        f"{V}validate/",
        "model:view_registeredmodel",
        {"dataframe_records": [{"age": 1, "income": 2.0, "region": "x"}]},
    ),
    Row("GET", f"{V}artifacts/", "model:view_registeredmodel"),
    Row("POST", f"{V}artifacts/", "model:change_registeredmodel", extra={"upload": True}),
    Row("GET", f"{V}artifacts/<int:artifact_id>/", "model:view_registeredmodel"),
    Row("GET", f"{V}artifacts/<int:artifact_id>/download/", "model:view_registeredmodel"),
    Row("GET", f"{V}jobs/", "model:view_registeredmodel"),
    Row("POST", f"{V}jobs/", "model:change_registeredmodel", {"kind": "inspect"}),
    Row("GET", f"{V}jobs/<int:job_id>/", "model:view_registeredmodel"),
    Row("POST", f"{V}jobs/<int:job_id>/cancel/", "model:change_registeredmodel"),
    Row("GET", "api/v1/versions/", "list"),
    Row("GET", "api/v1/feature-sources/", "list"),
    Row("POST", "api/v1/feature-sources/", "global:add_featuresource", {"name": "t2"}),
    Row("GET", "api/v1/feature-sources/<int:pk>/", "lineage"),
    Row("GET", "api/v1/features/", "list"),
    Row("POST", "api/v1/features/", "global:add_logicalfeature", {"name": "f2", "source": 0}),
    Row("GET", "api/v1/features/<int:pk>/", "lineage"),
    Row("GET", "api/v1/datasets/", "list"),
    Row("POST", "api/v1/datasets/", "global:add_dataset", {"name": "d2"}),
    Row("GET", "api/v1/datasets/<int:pk>/", "lineage"),
    Row("GET", "api/v1/datasets/<int:pk>/model-versions/", "lineage"),
    Row(
        "POST", "api/v1/lineage/register/", "global:add_trainingrun", {"run": {"run_id": "bulk-r"}}
    ),
    Row("GET", "lineage/", "list", page=True),
    Row("GET", "scorecard/", "list", page=True),
    Row("GET", "scorecard/teams/<int:team_id>/", "list", page=True),
    Row("GET", "models/<mname:name>/scorecard/", "model:view_registeredmodel", page=True),
    Row("POST", "models/<mname:name>/access/review/", "model:manage_access", page=True),
    Row("GET", "api/v1/scorecard/", "list"),
    Row("GET", "api/v1/scorecard/teams/<int:team_id>/", "list"),
    Row("GET", "api/v1/scorecard/models/<mname:name>/", "model:view_registeredmodel"),
    Row("GET", "api/v1/scorecard/trend/", "global:view_registeredmodel"),
    Row("GET", "api/v1/scorecard/export/", "list"),
    Row("GET", "lineage/<str:kind>/<int:pk>/", "lineage", page=True),
    Row("GET", "lineage/<str:kind>/<int:pk>/impact/", "lineage", page=True),
    Row("GET", "api/v1/lineage/<str:kind>/<int:pk>/graph/", "lineage"),
    Row("GET", "api/v1/lineage/<str:kind>/<int:pk>/impact/", "lineage"),
    Row("GET", "api/v1/code-refs/", "list"),
    Row(
        "POST",
        "api/v1/code-refs/",
        "global:add_coderef",
        {"repository": "git@x:y.git", "commit": "a" * 40},
    ),
    Row("GET", "api/v1/code-refs/<int:pk>/", "lineage"),
    Row("GET", "api/v1/training-runs/", "list"),
    Row("POST", "api/v1/training-runs/", "global:add_trainingrun", {"run_id": "r2"}),
    Row("GET", "api/v1/training-runs/<int:pk>/", "lineage"),
    Row("GET", "api/v1/deployments/", "list"),
    Row(
        "POST",
        "api/v1/deployments/",
        "model:change_registeredmodel",
        {"version": 1, "environment": "staging", "target": "t"},
    ),
    Row("GET", "api/v1/deployments/<int:pk>/", "model:view_registeredmodel"),
    Row("POST", "api/v1/deployments/<int:pk>/retire/", "model:change_registeredmodel"),
    Row("GET", "api/v1/models/<mname:name>/deployments/", "model:view_registeredmodel"),
    Row(
        "POST",
        "models/<mname:name>/deployments/<int:pk>/retire/",
        "model:change_registeredmodel",
        page=True,
    ),
    Row("GET", "api/v1/promotion-requests/", "list"),
    Row(
        "POST",
        "api/v1/promotion-requests/",
        "model:request_promotion",
        {"version": 1, "target_stage": "staging"},
    ),
    Row("GET", "api/v1/promotion-requests/<int:pk>/", "model:view_registeredmodel"),
    Row(
        "POST",
        "api/v1/promotion-requests/<int:pk>/reviews/",
        "model:approve_promotion",
        {"decision": "reject", "comment": "no"},
    ),
    Row("POST", "api/v1/promotion-requests/<int:pk>/apply/", "model:request_promotion"),
    Row("POST", "api/v1/promotion-requests/<int:pk>/cancel/", "cancel"),
    Row("POST", f"{M}rollback/", "model:request_promotion", {"justification": "why"}),
    Row("GET", f"{M}policy/", "model:view_registeredmodel"),
    Row("GET", f"{M}history/", "model:view_registeredmodel"),
    Row("GET", f"{M}compliance/", "model:view_registeredmodel"),
    Row("GET", f"{M}my-permissions/", "model:view_registeredmodel"),
    Row("GET", f"{V}card/", "model:view_registeredmodel"),
    Row(
        "PATCH",
        f"{V}card/",
        "model:change_registeredmodel",
        {"sections": {"intended_use": "For scoring."}},
    ),
    Row("GET", f"{V}card/revisions/", "model:view_registeredmodel"),
    Row("POST", f"{V}card/revisions/<int:revision>/restore/", "model:change_registeredmodel"),
    Row("GET", f"{V}card/diff/", "model:view_registeredmodel", extra={"from": 1, "to": 1}),
    Row("POST", f"{V}card/submit/", "model:change_registeredmodel"),
    Row("POST", f"{V}card/reviews/", "model:approve_promotion", {"decision": "approve"}),
    Row(
        "POST",
        f"{V}card/import/",
        "model:change_registeredmodel",
        {"readme": "## Intended use\n\nScoring."},
    ),
    Row("GET", f"{V}card/export.<str:file_format>", "model:view_registeredmodel"),
    Row("POST", "api/v1/markdown/preview/", "list", {"text": "**bold**"}),
    Row("GET", "api/v1/audit/events/", "list"),
    Row("GET", "api/v1/audit/events/export.<str:file_format>", "list"),
    # MLflow's registry API: the model is named in the query (GET) or the JSON body.
    Row("POST", f"{MLR}create", "global:add_registeredmodel", {"name": "brand-new-mlflow"}),
    Row("GET", f"{MLR}get", "model:view_registeredmodel", extra=MLN),
    Row(
        "POST",
        f"{MLR}rename",
        "model:change_registeredmodel",
        {**MLN, "new_name": "renamed-by-mlflow"},
    ),
    Row("PATCH", f"{MLR}update", "model:change_registeredmodel", {**MLN, "description": "d"}),
    Row("DELETE", f"{MLR}delete", "model:delete_registeredmodel", MLN),
    Row("GET", f"{MLR}search", "list"),
    Row("POST", f"{MLR}get-latest-versions", "model:view_registeredmodel", MLN),
    Row("GET", f"{MLR}get-latest-versions", "model:view_registeredmodel", extra=MLN),
    Row("POST", f"{MLR}set-tag", "model:change_registeredmodel", {**MLN, "key": "k", "value": "v"}),
    Row("DELETE", f"{MLR}delete-tag", "model:change_registeredmodel", {**MLN, "key": "team"}),
    Row(
        "POST",
        f"{MLR}alias",
        "model:change_registeredmodel",
        {**MLN, "alias": "candidate", "version": "1"},
    ),
    Row("DELETE", f"{MLR}alias", "model:change_registeredmodel", {**MLN, "alias": "champion"}),
    Row("GET", f"{MLR}alias", "model:view_registeredmodel", extra={**MLN, "alias": "champion"}),
    Row("POST", f"{MLV}create", "model:change_registeredmodel", {**MLN, "source": "s3://b/m"}),
    Row("GET", f"{MLV}get", "model:view_registeredmodel", extra=MLNV),
    Row("PATCH", f"{MLV}update", "model:change_registeredmodel", {**MLNV, "description": "d"}),
    Row("DELETE", f"{MLV}delete", "model:delete_registeredmodel", MLNV),
    Row(
        "POST",
        f"{MLV}transition-stage",
        "model:change_registeredmodel",
        {**MLNV, "stage": "Archived", "archive_existing_versions": False},
    ),
    # Into a serving stage: request_promotion (and the policy's approvals: a request opens).
    Row(
        "POST",
        f"{MLV}transition-stage",
        "model:request_promotion",
        {**MLNV, "stage": "Staging", "archive_existing_versions": False},
        extra={"variant": "promote"},
    ),
    Row("GET", f"{MLV}search", "list"),
    Row("GET", f"{MLV}get-download-uri", "model:view_registeredmodel", extra=MLNV),
    Row(
        "POST", f"{MLV}set-tag", "model:change_registeredmodel", {**MLNV, "key": "k", "value": "v"}
    ),
    Row("DELETE", f"{MLV}delete-tag", "model:change_registeredmodel", {**MLNV, "key": "k"}),
    # MLflow's artifact protocol over the bundles (bundles/<artifact id>[/<file>]).
    Row("GET", "api/2.0/mlflow-artifacts/artifacts", "model:view_registeredmodel", extra=BUNDLE),
    Row("GET", "api/2.0/mlflow-artifacts/artifacts/<path:path>", "model:view_registeredmodel"),
]


# --- The routes that exist ------------------------------------------------------------------


def _routes(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            if route == "admin/":
                found.append((route, None))
            else:
                found.extend(_routes(p.url_patterns, route))
        elif isinstance(p, URLPattern):
            found.append((route, p.callback))
    return found


def _methods(callback: Any) -> list[str]:
    if callback is None:
        return ["*"]
    view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view is None:
        return sorted(getattr(callback, "http_methods", ("GET",)))  # function pages
    return sorted(
        m.upper()
        for m in view.http_method_names
        if m not in ("options", "head", "trace") and hasattr(view, m)
    )


def test_every_route_is_in_the_matrix():
    existing = {
        (m, route) for route, cb in _routes(get_resolver().url_patterns) for m in _methods(cb)
    }
    rows = {(r.method, r.route) for r in MATRIX}
    assert sorted(existing - rows) == [], "routes without a permission row (add them to MATRIX)"
    assert sorted(rows - existing) == [], "rows for routes that no longer exist"
    variants = [r for r in MATRIX if "variant" in r.extra]
    assert len(rows) == len(MATRIX) - len(variants), "duplicate rows"


# --- The world ------------------------------------------------------------------------------

LINEAGE_KINDS = ("feature-sources", "features", "datasets", "code-refs", "training-runs")


@dataclass
class World:
    ids: dict[str, dict[str, int]]
    lineage: dict[str, dict[str, int]]  # per model: its own chain's ids, by URL segment
    dataset: int
    feature_source: int
    feature: int
    code_ref: int
    run: int
    requester: User
    cast: dict[str, User]  # per-model role holders, outsider, admin
    global_cast: dict[str, User]


def _chain(act: Actor, name: str) -> dict[str, Any]:
    source = services.feature_source_create(actor=act, name=f"{name}-source")
    feature = services.logical_feature_create(actor=act, source=source, name=f"{name}-feature")
    dataset = services.dataset_create(actor=act, name=f"{name}-data", features=[feature])
    code = services.code_ref_create(actor=act, repository=f"git@x:{name}.git", commit="c" * 40)
    run = services.training_run_create(
        actor=act,
        run_id=f"{name}-run",
        code_ref=code,
        datasets=[(dataset, "training")],
        params={"secret": f"{name}-param"},
    )
    return {
        "feature-sources": source.pk,
        "features": feature.pk,
        "datasets": dataset.pk,
        "code-refs": code.pk,
        "training-runs": run.pk,
        "run": run,
    }


def _bundle(act: Actor, version: Any, source: Any) -> Any:
    """An MLflow bundle as the bundle job leaves it (a zip the job derived), for the
    mlflow-artifacts routes; the job itself is tested in tests/packaging."""
    now = timezone.now()
    job = PackagingJob.objects.create(
        version=version,
        kind=PackagingJob.Kind.BUNDLE,
        status=PackagingJob.Status.SUCCEEDED,
        requested_by=act.user,
        created_at=now,
        updated_at=now,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("MLmodel", "flavors: {}\n")
    buffer.seek(0)
    bundle = services.artifact_upload(
        actor=act, version=version, filename="bundle.zip", chunks=read_chunks(buffer)
    )
    Artifact.objects.filter(pk=bundle.pk).update(
        derived=True, derived_from=source, derived_by_job=job
    )
    return bundle


def _build(roles: dict[str, Any]) -> World:
    root = superuser()
    act = Actor(user=root, channel="cli")
    author = UserFactory(username="author")
    author.groups.add(roles["data scientist"])
    requester = UserFactory(username="requester")
    requester.groups.add(roles["ml engineer"])
    source = services.feature_source_create(actor=act, name="t1", kind="table")
    feature = services.logical_feature_create(actor=act, source=source, name="f1")
    dataset = services.dataset_create(actor=act, name="d1", features=[feature])
    code = services.code_ref_create(actor=act, repository="git@x:y.git", commit="b" * 40)
    run = services.training_run_create(
        actor=act, run_id="r1", code_ref=code, datasets=[(dataset, "training")]
    )
    ids: dict[str, dict[str, int]] = {}
    lineage: dict[str, dict[str, int]] = {}
    for name in MODELS:
        registered_model = services.registered_model_create(
            actor=act, name=f"{name}-model", tags={"team": "x"}
        )
        version, _ = services.version_create(
            actor=Actor(user=author, channel="cli"),
            registered_model=registered_model,
            signature=SIGNATURE,
            metrics={"auc": 0.9},
            tags={"team": "x"},
            training_run=run,
        )
        chain = _chain(act, f"{name}-model")
        lineage[name] = {k: v for k, v in chain.items() if k != "run"}
        services.version_create(
            actor=act,
            registered_model=registered_model,
            metrics={"auc": 0.8},
            run_id=f"{name}-model-run",
            training_run=chain["run"],
        )
        artifact = services.artifact_upload(
            actor=act,
            version=version,
            filename="m.pkl",
            chunks=read_chunks(io.BytesIO(name.encode())),
        )
        bundle = _bundle(act, version, artifact)
        services.alias_set(
            actor=act, registered_model=registered_model, name="champion", version=version
        )
        deployment = services.deployment_create(
            actor=act, version=version, environment="staging", target="t"
        )
        request = promotions.promotion_request_create(
            actor=Actor(user=requester, channel="cli"), version=version, target_stage="production"
        )
        ids[name] = {
            "model": registered_model.pk,
            "artifact": artifact.pk,
            "deployment": deployment.pk,
            "request": request.pk,
            "job": artifact.jobs.get().pk,
            "bundle": bundle.pk,
        }
    cast: dict[str, User] = {}
    model = RegisteredModel.objects.get(name="granted-model")
    for role, perms in ROLE_PERMS.items():
        user = UserFactory(username=f"pm-{role.replace(' ', '-')}")
        for perm in perms:  # made by an administrator, as approval grants must be
            permissions.grant(perm, model, user=user, granted_by=root)
        cast[role] = user
    cast["outsider"] = UserFactory(username="nobody")
    cast["administrator"] = root
    global_cast = {}
    for role in ROLES:
        user = UserFactory(username=f"global-{role.replace(' ', '-')}")
        user.groups.add(roles[role])
        global_cast[role] = user
    return World(
        ids,
        lineage,
        dataset.pk,
        source.pk,
        feature.pk,
        code.pk,
        run.pk,
        requester,
        cast,
        global_cast,
    )


def _url(row: Row, world: World, model: str) -> str:
    ids = world.ids[model]
    values = {
        "name": f"{model}-model",
        "number": "1",
        "key": "team",
        "alias": "champion",
        "artifact_id": str(ids["artifact"]),
        "revision": "1",
        "job_id": str(ids["job"]),
        "file_format": "hf" if "card/" in row.route else "jsonl",
        "path": f"bundles/{ids['bundle']}/MLmodel",
        "team_id": "0",  # the models without a team, which both are
    }
    route = row.route
    if "<int:pk>" in route and route.startswith("requests/"):
        route = route.replace("<int:pk>", str(ids["request"]))
    if "<str:kind>" in route:  # the lineage graph and impact analysis, from the model's dataset
        pk = world.lineage[model]["datasets"]
        route = route.replace("<str:kind>", "dataset").replace("<int:pk>", str(pk))
    if "<int:pk>" in route and row.rule == "lineage":
        route = route.replace("<int:pk>", str(world.lineage[model][route.split("/")[2]]))
    if "<int:pk>" in route:
        pk = {
            "feature-sources": world.feature_source,
            "features": world.feature,
            "datasets": world.dataset,
            "code-refs": world.code_ref,
            "training-runs": world.run,
            "deployments": ids["deployment"],
            "promotion-requests": ids["request"],
        }[route.split("/")[2]]
        route = route.replace("<int:pk>", str(pk))
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
    return "/" + route


def _body(row: Row, world: World, model: str) -> dict[str, Any] | None:
    if row.body is None:
        return None
    body = {k: f"{model}-model" if v == "{model}" else v for k, v in row.body.items()}
    if row.route in ("api/v1/deployments/",):
        body["name"] = f"{model}-model"
    if row.route == "api/v1/promotion-requests/":
        body["model"] = f"{model}-model"
    if row.route == "api/v1/features/":
        body["source"] = world.feature_source
    return body


# --- Expectations ---------------------------------------------------------------------------


def _perms_on(who: str, model: str) -> set[Perm]:
    if who == "administrator":
        return set(Perm)
    if who in ROLE_PERMS and model == "granted":
        return ROLE_PERMS[who]
    return set()


def _expected(row: Row, who: str, model: str, global_role: str | None = None) -> str:
    if row.rule == "sso-off":
        return "hidden"
    if who == "anonymous":
        return "public" if row.rule == "public" else "unauthenticated"
    if row.rule in ("public", "list"):
        return "allowed"
    if global_role is not None:
        perms = {
            Perm(p.split(".")[1])
            for p in ROLES[global_role]
            if p.split(".")[1] in Perm._value2member_map_
        }
        codenames = {p.split(".")[1] for p in ROLES[global_role]}
    else:
        perms = _perms_on(who, model)
        codenames = {"*"} if who == "administrator" else set()
    kind, _, needed = row.rule.partition(":")
    if kind == "global":
        return "allowed" if "*" in codenames or needed in codenames else "forbidden"
    if Perm.VIEW not in perms:
        return "hidden"
    if kind == "lineage":
        return "allowed"
    if kind == "cancel":
        return "allowed" if Perm.MANAGE_ACCESS in perms else "forbidden"
    return "allowed" if Perm(needed) in perms else "forbidden"


def _outcome(response: Any, page: bool) -> tuple[str, str]:
    status = response.status_code
    code = ""
    if not page and "json" in response.get("Content-Type", "") and not response.streaming:
        data = response.json()
        code = data.get("code", "") if isinstance(data, dict) else ""
    return str(status), code


def _matches(expected: str, response: Any, row: Row) -> bool:
    status, code = _outcome(response, row.page)
    status_code = int(status)
    if status_code >= 500:
        return False
    if expected == "unauthenticated":
        if row.page:
            return status_code == 302 and "/login/" in response["Location"]
        return status_code in (401, 403) and code in ("not_authenticated", "authentication_failed")
    if expected == "hidden":
        return status_code == 404
    if expected == "forbidden":
        return status_code == 403 and (row.page or code == "permission_denied")
    # allowed: anything but a refusal
    if status_code == 404:
        return code in LEGIT_404
    if status_code in (401, 403):
        return status_code == 403 and code not in ("permission_denied", "not_authenticated")
    return True


def _send(row: Row, world: World, user: User | None, model: str) -> Any:
    url, body = _url(row, world, model), _body(row, world, model)
    if row.page:
        client = Client()
        if user is not None:
            client.force_login(user)

        def fill(values: dict[str, Any]) -> dict[str, Any]:
            return {k: f"{model}-model" if v == "{model}" else v for k, v in values.items()}

        if row.method == "GET":
            return client.get(url, fill(row.extra))
        return (
            client.post(url, fill(row.body or {}))
            if row.method == "POST"
            else client.generic(row.method, url)
        )
    client = APIClient()
    if user is not None:
        client.force_authenticate(User.objects.get(pk=user.pk))  # fresh: no cached grants
    if row.extra.get("upload"):
        return client.post(
            url,
            data=b"weights",
            content_type="application/octet-stream",
            HTTP_CONTENT_DISPOSITION='attachment; filename="w.bin"',
        )
    params = {
        k: f"bundles/{world.ids[model]['bundle']}"
        if v == "{bundle}"
        else f"{model}-model"
        if v == "{model}"
        else v
        for k, v in row.extra.items()
        if k not in ("upload", "variant")
    }
    if row.method == "GET":
        return client.get(url, params)
    return client.generic(row.method, url, json.dumps(body or {}), content_type="application/json")


def _leaks(response: Any, who: str, global_role: str | None) -> list[str]:
    text = b"".join(response.streaming_content) if response.streaming else response.content
    text = text.decode(errors="replace")
    if who == "administrator" or global_role is not None:
        return []
    return [
        f"{m}-model" for m in MODELS if Perm.VIEW not in _perms_on(who, m) and f"{m}-model" in text
    ]


ROWS = [r for r in MATRIX if r.rule != "staff"]
ROW_IDS = [
    f"{r.method} /{r.route}" + (f" ({r.extra['variant']})" if "variant" in r.extra else "")
    for r in ROWS
]


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_permission_matrix(row: Row, roles: dict[str, Any]) -> None:
    world = _build(roles)
    failures = []
    runs: list[tuple[str, User | None, str | None]] = [
        (who, user, None) for who, user in world.cast.items()
    ]
    runs.append(("anonymous", None, None))
    if row.rule.startswith("global") or row.rule in ("list", "lineage"):
        runs += [(f"global {role}", user, role) for role, user in world.global_cast.items()]
    models = (
        ("granted",) if row.rule in ("list", "public") or row.rule.startswith("global") else MODELS
    )
    for who, user, global_role in runs:
        for model in models:
            expected = _expected(row, who, model, global_role)
            with transaction.atomic():
                response = _send(row, world, user, model)
                leaks = (
                    _leaks(response, who, global_role) if row.rule in ("list", "lineage") else []
                )
                transaction.set_rollback(True)
            if expected == "public":
                ok = int(response.status_code) < 500
            else:
                ok = _matches(expected, response, row)
            if not ok or leaks:
                failures.append(
                    f"{who:>22} on {model:<8} expected {expected:<15} got "
                    f"{_outcome(response, row.page)} leaks={leaks}"
                )
    assert not failures, f"{row.method} /{row.route}\n" + "\n".join(failures)


def _walk(client: APIClient, url: str) -> tuple[list[int], list[bytes]]:
    """Every row of a list, a page of one at a time (what a count would add up to)."""
    ids, bodies, params = [], [], {"page_size": 1}
    while url:
        r = client.get(url, params)
        assert r.status_code == 200, (url, r.content)
        bodies.append(r.content)
        ids += [row["id"] for row in r.json()["results"]]
        url, params = r.json()["next"], None
    return sorted(ids), bodies


def test_lineage_never_leads_a_per_model_user_to_the_hidden_model(roles: dict[str, Any]) -> None:
    """Lists (walked page by page), details, nested links, the pages showing a version's
    lineage and version search by run: for every per-model role holder and the outsider,
    nothing of the hidden model's chain, and the shared chain only with the granted model."""
    world = _build(roles)
    shared = {
        "feature-sources": world.feature_source,
        "features": world.feature,
        "datasets": world.dataset,
        "code-refs": world.code_ref,
        "training-runs": world.run,
    }
    for who, user in world.cast.items():
        if who == "administrator":
            continue
        client = APIClient()
        client.force_authenticate(User.objects.get(pk=user.pk))
        sees = Perm.VIEW in _perms_on(who, "granted")
        bodies: list[bytes] = []
        for kind in LINEAGE_KINDS:
            ids, texts = _walk(client, f"/api/v1/{kind}/")
            bodies += texts
            assert ids == (
                sorted([shared[kind], world.lineage["granted"][kind]]) if sees else []
            ), (who, kind)
            for model, pk in (
                ("granted", world.lineage["granted"][kind]),
                ("hidden", world.lineage["hidden"][kind]),
                ("shared", shared[kind]),
            ):
                r = client.get(f"/api/v1/{kind}/{pk}/")
                bodies.append(r.content)
                assert r.status_code == (200 if sees and model != "hidden" else 404), (who, kind)
        for pk in (world.dataset, world.lineage["granted"]["datasets"]):
            r = client.get(f"/api/v1/datasets/{pk}/model-versions/")
            bodies.append(r.content)
            if sees:
                assert [v["name"] for v in r.json()["results"]] == ["granted-model"]
        if sees:
            run = client.get(f"/api/v1/training-runs/{world.run}/").json()
            assert run["model_versions"] == [{"name": "granted-model", "version": 1}]
        for params in ({"run_id": "hidden-model-run"}, {"q": "run_id = 'hidden-model-run'"}):
            r = client.get("/api/v1/versions/", params)
            assert r.status_code == 200 and r.json()["results"] == [], (who, params)
        page = Client()
        page.force_login(user)
        for url in (
            "/models/granted-model/",
            "/models/granted-model/versions/1/",
            "/models/granted-model/versions/2/",
        ):
            r = page.get(url)
            bodies.append(r.content)
            assert r.status_code == (200 if sees else 404), (who, url)
        leaked = [b[:200] for b in bodies if b"hidden-model" in b]
        assert not leaked, (who, leaked)


def test_admin_site_is_for_staff_only(client: Client, roles: dict[str, Any]) -> None:
    world = _build(roles)
    for who, user in world.cast.items():
        client.force_login(user)
        r = client.get("/admin/")
        assert (r.status_code == 200) == user.is_staff, who
    client.logout()
    assert client.get("/admin/").status_code == 302
