"""MLflow's 20 model-registry RPCs (21 method + path routes), each a thin adapter over the
registry's selectors and services: the same permission gate, validation, approvals and audit
as /api/v1/. Where governance says no, the answer says why in MLflow's terms; a stage move or
alias move the model's policy gates opens (or finds) the promotion request instead."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from django.db import transaction
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import Actor
from core.edge import is_whole_number
from core.errors import Conflict, DomainError, NotFound
from governance import promotions
from governance.mlflow_api import downloads, entities, errors, filters
from governance.mlflow_api.base import MlflowView
from governance.models import PromotionRequest
from registry import selectors, services
from registry.models import Artifact, ModelVersion

MAX_MODELS = 1000
MAX_VERSIONS = 200_000
# Versions answered per page whatever max_results asks (MLflow's limit is 200,000 in one
# answer): more come with a next_page_token, which every MLflow pager follows.
VERSION_PAGE_CAP = 10_000


# --- Lookups ---------------------------------------------------------------------------------


def _number(raw: str) -> int:
    if not is_whole_number(raw) or int(raw) < 1:
        raise errors.invalid(f"Model version must be an integer, got '{raw[:50]}'.")
    return int(raw)


def _model(request: Request, name: str, *, details: bool = False) -> Any:
    return selectors.registered_model_get(user=request.user, name=name, details=details)


def _version(request: Request, name: str, raw_version: str) -> Any:
    number = _number(raw_version)
    registered_model = _model(request, name)
    try:
        return selectors.version_get(
            user=request.user, registered_model=registered_model, number=number
        )
    except NotFound:
        raise errors.missing(
            f"Model Version (name={name}, version={number}) not found.", "version_not_found"
        ) from None


def _latest(request: Request, model_pks: list[int], stages: list[str] | None = None) -> dict:
    """The newest live version of each stage of each model, by model, in MLflow's stage
    order."""
    found: dict[int, list[Any]] = {pk: [] for pk in model_pks}
    for row in selectors.latest_per_stage(user=request.user, model_pks=model_pks, stages=stages):
        found[row.registered_model_id].append(row)
    order = list(entities.STAGE_NAMES)
    for versions in found.values():
        versions.sort(key=lambda v: order.index(v.stage))
    return found


def _model_entity(request: Request, name: str) -> dict[str, Any]:
    row = _model(request, name, details=True)
    return entities.registered_model(row, _latest(request, [row.pk])[row.pk])


def _version_entity(request: Request, name: str, number: int) -> dict[str, Any]:
    return entities.model_version(_version(request, name, str(number)))


def _mlflow_name(raw: str) -> str:
    if ":" in raw or "/" in raw:
        raise errors.invalid(f"Invalid model name '{raw[:100]}': names may not contain '/' or ':'.")
    return raw


def _stage(raw: str) -> str:
    stage = entities.STAGES_BY_NAME.get(raw.lower())
    if stage is None:
        raise errors.invalid(
            f"Invalid Model Version stage: {raw[:50]}. Value must be one of "
            f"{', '.join(entities.STAGE_NAMES.values())}."
        )
    return stage


def _tag_pairs(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or not all(
        isinstance(t, dict) and isinstance(t.get("key"), str) for t in value
    ):
        raise errors.invalid("tags must be a list of {key, value} objects.")
    return {t["key"]: "" if t.get("value") is None else t["value"] for t in value}


def _max_results(view: MlflowView, default: int, limit: int) -> int:
    raw = view.text("max_results", required=False)
    if isinstance(view.fields().get("max_results"), int):  # a JSON number in a body
        raw = str(view.fields()["max_results"])
    if not raw:
        return default
    if not is_whole_number(raw) or not 1 <= int(raw) <= limit:
        raise errors.invalid(
            f"Invalid value {raw[:20]} for parameter 'max_results' supplied. It must be at "
            f"most {limit}, and at least 1."
        )
    return int(raw)


# --- Governance behind MLflow's moves --------------------------------------------------------


def _gated(
    request: Request,
    actor: Actor,
    refusal: DomainError,
    version: Any,
    *,
    stage: str = "",
    alias: str = "",
) -> errors.MlflowError:
    """The policy wants approvals for this move: open the promotion request (or find the one
    already open for this version and target) and say where it waits."""
    try:
        promotion_request = promotions.promotion_request_create(
            actor=actor,
            version=version,
            target_stage=stage,
            target_alias=alias,
            justification="Requested through MLflow's API "
            f"({'transition-stage' if stage else 'set alias'}).",
        )
        opened = "opened"
    except Conflict as exc:
        if exc.code != "duplicate_request":
            raise
        promotion_request = PromotionRequest.objects.get(pk=int(str(exc.extra["request"])))
        opened = "is already open"
    url = request.build_absolute_uri(
        reverse("governance:request-detail", args=[promotion_request.pk])
    )
    target = stage or f"alias '{alias}'"
    if promotion_request.status != PromotionRequest.Status.PENDING:
        # Applied at once (the policy changed in between): nothing was refused after all.
        return errors.MlflowError(
            errors.INVALID_STATE,
            f"Promotion request #{promotion_request.pk} for {target} is "
            f"{promotion_request.status}: {url}",
            code="approval_required",
        )
    return errors.MlflowError(
        errors.PERMISSION_DENIED,
        f"{refusal.message.split(':')[0]}. Promotion request #{promotion_request.pk} "
        f"{opened} for version {version.version} → {target}; it waits for review at {url}",
        status=403,
        code="approval_required",
    )


# --- Registered models -----------------------------------------------------------------------


class RegisteredModelCreate(MlflowView):
    def post(self, request: Request) -> Response:
        name = _mlflow_name(self.text("name"))
        services.registered_model_create(
            actor=self.actor(),
            name=name,
            description=self.text("description", required=False),
            tags=_tag_pairs(self.fields().get("tags")),
        )
        return self.ok({"registered_model": _model_entity(request, name)})


class RegisteredModelGet(MlflowView):
    def get(self, request: Request) -> Response:
        return self.ok({"registered_model": _model_entity(request, self.text("name"))})


class RegisteredModelRename(MlflowView):
    def post(self, request: Request) -> Response:
        registered_model = _model(request, self.text("name"))
        new_name = _mlflow_name(self.text("new_name"))
        services.registered_model_update(
            actor=self.actor(), registered_model=registered_model, name=new_name
        )
        return self.ok({"registered_model": _model_entity(request, new_name)})


class RegisteredModelUpdate(MlflowView):
    def patch(self, request: Request) -> Response:
        name = self.text("name")
        registered_model = _model(request, name)
        if "description" in self.fields():
            services.registered_model_update(
                actor=self.actor(),
                registered_model=registered_model,
                description=self.text("description", required=False),
            )
        return self.ok({"registered_model": _model_entity(request, name)})


class RegisteredModelDelete(MlflowView):
    def delete(self, request: Request) -> Response:
        registered_model = _model(request, self.text("name"))
        services.registered_model_delete(actor=self.actor(), registered_model=registered_model)
        return self.ok()


class RegisteredModelSearch(MlflowView):
    def get(self, request: Request) -> Response:
        limit = _max_results(self, 100, MAX_MODELS)
        offset = filters.page_offset(self.text("page_token", required=False))
        rows = list(
            selectors.registered_model_list(user=request.user)
            .filter(filters.to_q(self.text("filter", required=False), target="model"))
            .order_by(*filters.ordering(self.many("order_by"), target="model"))[
                offset : offset + limit + 1
            ]
        )
        more, rows = len(rows) > limit, rows[:limit]
        latest = _latest(request, [r.pk for r in rows])
        payload: dict[str, Any] = {
            "registered_models": [entities.registered_model(r, latest[r.pk]) for r in rows]
        }
        if more:
            payload["next_page_token"] = filters.page_token(offset + limit)
        return self.ok(payload)


class LatestVersions(MlflowView):
    def post(self, request: Request) -> Response:
        return self._answer(request)

    def get(self, request: Request) -> Response:
        return self._answer(request)

    def _answer(self, request: Request) -> Response:
        registered_model = _model(request, self.text("name"))
        stages = [_stage(s) for s in self.many("stages")] or None
        versions = _latest(request, [registered_model.pk], stages)[registered_model.pk]
        return self.ok({"model_versions": [entities.model_version(v) for v in versions]})


class RegisteredModelSetTag(MlflowView):
    def post(self, request: Request) -> Response:
        services.registered_model_tag_set(
            actor=self.actor(),
            registered_model=_model(request, self.text("name")),
            key=self.text("key"),
            value=self.text("value", required=False),
        )
        return self.ok()


class RegisteredModelDeleteTag(MlflowView):
    def delete(self, request: Request) -> Response:
        services.registered_model_tag_delete(
            actor=self.actor(),
            registered_model=_model(request, self.text("name")),
            key=self.text("key"),
        )
        return self.ok()


class Alias(MlflowView):
    def get(self, request: Request) -> Response:
        """get_model_version_by_alias; `latest` (reserved) is the highest live version."""
        name, alias = self.text("name"), self.text("alias")
        registered_model = _model(request, name)
        if alias.lower() == "latest":
            row = (
                selectors.version_list(
                    user=request.user,
                    filters=selectors.VersionFilters(registered_model=registered_model),
                )
                .order_by("-version")
                .first()
            )
        else:
            try:
                row = selectors.version_resolve(
                    user=request.user, registered_model=registered_model, alias=alias
                )
            except NotFound:
                row = None
        if row is None:
            raise errors.invalid(f"Registered model alias {alias[:255]} not found.")
        return self.ok({"model_version": entities.model_version(row)})

    def post(self, request: Request) -> Response:
        name, alias = self.text("name"), self.text("alias")
        version = _version(request, name, self.text("version"))
        actor = self.actor()
        try:
            services.alias_set(
                actor=actor, registered_model=version.registered_model, name=alias, version=version
            )
        except DomainError as exc:
            if exc.code != "approval_required":
                raise
            raise _gated(request, actor, exc, version, alias=alias) from None
        return self.ok()

    def delete(self, request: Request) -> Response:
        name, alias = self.text("name"), self.text("alias")
        try:
            services.alias_delete(
                actor=self.actor(), registered_model=_model(request, name), name=alias
            )
        except NotFound as exc:
            if exc.code != "alias_not_found":
                raise
        return self.ok()


# --- Model versions --------------------------------------------------------------------------

COPY_SOURCE = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<number>\d+)|@(?P<alias>[\w-]+))")


def _copied(request: Request, source: str) -> tuple[Any, list[Artifact]] | None:
    """The version a `models:/<name>/<n>` or `models:/<name>@<alias>` source names (MLflow's
    copy_model_version), resolved now: the new version takes its files (or, without files, its
    source URI), so the copy is approved for that content and not for whatever the reference
    names later; returned with its stored files. References that move by themselves (a stage,
    `latest`) and MLflow 3's logged model ids are refused. None for a source that is no
    models:/ URI (kept, never fetched)."""
    if not source.startswith("models:/"):
        return None
    match = COPY_SOURCE.fullmatch(source)
    if match is None:
        raise errors.invalid(
            f"Invalid model version source '{source[:300]}': a models:/ source names one "
            "version, models:/<name>/<version> or models:/<name>@<alias>, and is copied when "
            "the version is created; stages and 'latest' move, and logged models live on a "
            "tracking server."
        )
    try:
        registered_model = _model(request, match["name"])
        if match["alias"]:
            original = selectors.version_resolve(
                user=request.user, registered_model=registered_model, alias=match["alias"]
            )
        else:
            original = selectors.version_get(
                user=request.user, registered_model=registered_model, number=int(match["number"])
            )
    except NotFound as exc:
        error = errors.missing(
            f"The source {source[:300]} names no model version you can see.", "source_not_found"
        )
        error.refusal = exc.refusal  # an invisible model is audited as the selector says
        raise error from None
    files = list(original.artifacts.filter(derived=False))
    if not files and (not original.source or original.source.startswith("models:/")):
        raise errors.MlflowError(
            errors.INVALID_STATE,
            f"{source[:300]} has neither files stored here nor a source of its own to copy.",
            code="nothing_to_copy",
        )
    return original, files


class VersionCreate(MlflowView):
    def post(self, request: Request) -> Response:
        name = self.text("name")
        source = self.text("source")
        # (A NUL never gets here: the JSON parser refuses it.)
        if ".." in source.replace("\\", "/").split("/"):
            raise errors.invalid(f"Invalid model version source: '{source[:200]}'.")
        actor = self.actor()
        registered_model = _model(request, name)
        original, files = _copied(request, source) or (None, [])
        if original is not None and not files:
            source = original.source  # where the original's files live: MLflow's copy, too
        # A copy takes what describes the original's files with them (MLflow copies the
        # model directory, MLmodel and all); metrics stay with the run that measured them.
        described = (
            {
                "signature": original.signature,
                "input_example": original.input_example,
                "flavor": original.flavor,
                "pip_requirements": original.pip_requirements,
                "python_version": original.python_version,
                "params": original.params,
            }
            if original is not None
            else {}
        )
        # One transaction for the version and its copied files; without files the service's
        # own is enough (an outer block would only add a savepoint).
        with transaction.atomic() if files else contextlib.nullcontext():
            version, _ = services.version_create(
                actor=actor,
                registered_model=registered_model,
                source=source,
                run_id=self.text("run_id", required=False),
                run_link=self.text("run_link", required=False),
                description=self.text("description", required=False),
                tags=_tag_pairs(self.fields().get("tags")),
                **described,
            )
            for artifact in files:
                services.artifact_copy(actor=actor, version=version, source=artifact)
        # The answer is the version as every read shows it; its row brings the model's
        # current name, so the model need not be looked up by name again.
        row = selectors.version_get(
            user=request.user, registered_model=registered_model, number=version.version
        )
        return self.ok({"model_version": entities.model_version(row)})


class VersionGet(MlflowView):
    def get(self, request: Request) -> Response:
        row = _version(request, self.text("name"), self.text("version"))
        return self.ok({"model_version": entities.model_version(row)})


class VersionUpdate(MlflowView):
    def patch(self, request: Request) -> Response:
        name = self.text("name")
        version = _version(request, name, self.text("version"))
        if "description" in self.fields():
            services.version_update(
                actor=self.actor(),
                version=version,
                description=self.text("description", required=False),
            )
        return self.ok({"model_version": _version_entity(request, name, version.version)})


class VersionDelete(MlflowView):
    def delete(self, request: Request) -> Response:
        version = _version(request, self.text("name"), self.text("version"))
        services.version_delete(actor=self.actor(), version=version)
        return self.ok()


class VersionTransitionStage(MlflowView):
    def post(self, request: Request) -> Response:
        name = self.text("name")
        version = _version(request, name, self.text("version"))
        stage = _stage(self.text("stage"))
        archive = self.flag("archive_existing_versions")
        if archive and stage not in ModelVersion.PROMOTION_STAGES:
            raise errors.invalid(
                "archive_existing_versions applies to Staging and Production only, "
                f"not {entities.STAGE_NAMES[stage]}."
            )
        actor = self.actor()
        try:
            services.version_stage_set(
                actor=actor, version=version, stage=stage, archive_existing=archive
            )
        except DomainError as exc:
            if exc.code != "approval_required":
                raise
            raise _gated(request, actor, exc, version, stage=stage) from None
        return self.ok({"model_version": _version_entity(request, name, version.version)})


class VersionSearch(MlflowView):
    def get(self, request: Request) -> Response:
        limit = _max_results(self, 10_000, MAX_VERSIONS)
        page = min(limit, VERSION_PAGE_CAP)
        offset = filters.page_offset(self.text("page_token", required=False))
        text = self.text("filter", required=False)
        name = filters.only_name(text)
        if (
            name is not None
            and not offset
            and page == VERSION_PAGE_CAP
            and not self.many("order_by")
        ):
            # The client's default call: one model's versions, its first (usually only) page;
            # the same rows in the same order as below, from SQL compiled once.
            rows = selectors.versions_named(user=request.user, name=name, limit=page + 1)
        else:
            rows = list(
                selectors.version_list(user=request.user)
                .filter(filters.to_q(text, target="version"))
                .order_by(*filters.ordering(self.many("order_by"), target="version"))[
                    offset : offset + page + 1
                ]
            )
        more, rows = len(rows) > page, rows[:page]
        payload: dict[str, Any] = {"model_versions": [entities.model_version(r) for r in rows]}
        if more:
            payload["next_page_token"] = filters.page_token(offset + page)
        return self.ok(payload)


class VersionDownloadUri(MlflowView):
    def get(self, request: Request) -> Response:
        version = _version(request, self.text("name"), self.text("version"))
        return self.ok({"artifact_uri": downloads.download_uri(request, version)})


class VersionSetTag(MlflowView):
    def post(self, request: Request) -> Response:
        services.version_tag_set(
            actor=self.actor(),
            version=_version(request, self.text("name"), self.text("version")),
            key=self.text("key"),
            value=self.text("value", required=False),
        )
        return self.ok()


class VersionDeleteTag(MlflowView):
    def delete(self, request: Request) -> Response:
        services.version_tag_delete(
            actor=self.actor(),
            version=_version(request, self.text("name"), self.text("version")),
            key=self.text("key"),
        )
        return self.ok()
