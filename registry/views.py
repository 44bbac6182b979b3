"""Server-rendered pages: a selector (404 if invisible), then a template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core import permissions
from core.actors import Actor
from core.edge import instant, is_whole_number, tag_filters, whole_number
from core.errors import Conflict, NotFound, ValidationFailed
from core.pages import page
from core.permissions import Perm
from registry import deployments, evaluation_views, panels, selectors, services
from registry.charts import chart_axis, fraction
from registry.models import (
    ModelVersion,
    PackagingJob,
    RegisteredModel,
    TrainingRun,
    TrainingRunDataset,
)

if TYPE_CHECKING:  # a typing-only name (selectors define it for type checkers)
    from registry.selectors import ModelRow


@page
def home(request: HttpRequest) -> HttpResponse:
    """What needs the user: requests waiting for their review, their own open requests,
    recent promotions (contributed by governance), what is in production, failed jobs. A
    fixed number of queries."""
    user = request.user
    production = selectors.version_list(
        user=user, filters=selectors.VersionFilters(stage=ModelVersion.Stage.PRODUCTION)
    )
    failed_jobs = (
        permissions.visible(user, PackagingJob.objects.filter(status=PackagingJob.Status.FAILED))
        .select_related("version__registered_model")
        .order_by("-finished_at", "-pk")
    )
    return render(
        request,
        "registry/home.html",
        {
            **panels.context("home", user=user),
            "production": production.order_by("registered_model__name")[:20],
            "failed_jobs": failed_jobs[:10],
            "counts": {
                "models": permissions.visible_models(user).count(),
                "production": production.count(),
            },
        },
    )


def _typed_tag(text: str) -> str:
    """A tag filter typed into the page's box: spaces around the key and value are the
    typist's, not the tag's (the API takes filters exactly as given)."""
    key, sep, value = text.partition("=")
    return f"{key.strip()}{sep}{value.strip()}"


@page
def model_list(request: HttpRequest) -> HttpResponse:
    params = request.GET
    page_obj: Page[ModelRow] | Page[RegisteredModel]  # the rows, or none if the filters fail
    try:
        filters = selectors.ModelFilters(
            name_contains=params.get("name") or None,
            tags=tag_filters([_typed_tag(t) for t in params.getlist("tag") if t.strip()]),
            stage=params.get("stage") if params.get("stage") in ModelVersion.Stage.values else None,
            owner=params.get("owner") or None,
            team=params.get("team") or None,
            risk_tier=params.get("risk_tier")
            if params.get("risk_tier") in RegisteredModel.RiskTier.values
            else None,
            q=params.get("q") or None,
        )
        queryset = selectors.registered_model_list(user=request.user, filters=filters)
        page_obj = Paginator(queryset.order_by("name"), 25).get_page(params.get("page"))
        page_obj.object_list = list(page_obj.object_list)  # evaluated here: errors surface
    except ValidationFailed as exc:
        messages.error(request, exc.message)
        page_obj = Paginator(RegisteredModel.objects.none(), 25).get_page(1)
    return render(
        request,
        "registry/model_list.html",
        {
            "page_obj": page_obj,
            "params": params,
            "stages": ModelVersion.Stage.choices,
            "risk_tiers": RegisteredModel.RiskTier.choices,
        },
    )


def _lineage(versions: Sequence[ModelVersion]) -> dict[int, dict[str, Any]]:
    """Training run, code and datasets per version: two queries for any number of versions."""
    run_ids = {v.training_run_id for v in versions if v.training_run_id}
    runs = {r.pk: r for r in TrainingRun.objects.filter(pk__in=run_ids).select_related("code_ref")}
    links: dict[int, list[Any]] = {}
    for link in (
        TrainingRunDataset.objects.filter(training_run_id__in=run_ids)
        .select_related("dataset")
        .order_by("role", "dataset__name")
    ):
        links.setdefault(link.training_run_id, []).append(link)
    return {
        v.pk: {"run": runs.get(run_id), "datasets": links.get(run_id, [])}
        if (run_id := v.training_run_id) is not None
        else {"run": None, "datasets": []}
        for v in versions
    }


@page
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    registered_model = selectors.registered_model_get(user=request.user, name=name)
    versions = selectors.version_list(
        user=request.user, filters=selectors.VersionFilters(registered_model=registered_model)
    )
    at_text, at, at_error = request.GET.get("at", "").strip(), None, ""
    if at_text:
        try:
            at = instant(at_text, "at", naive_is_utc=True)
        except ValidationFailed:
            at_error = "Give a date and time like 2026-03-01 12:00 (UTC)."
    shown = list(versions.order_by("-version")[:200])
    lineage = _lineage(shown[:10])
    may_manage = permissions.has(request.user, Perm.MANAGE_ACCESS, registered_model)
    return render(
        request,
        "registry/model_detail.html",
        {
            **panels.context("model", user=request.user, registered_model=registered_model, at=at),
            "registered_model": registered_model,
            "versions": shown,
            "lineage": [(v, lineage[v.pk]) for v in shown[:10] if lineage[v.pk]["run"]],
            "may_request": permissions.has(request.user, Perm.REQUEST_PROMOTION, registered_model),
            "access": permissions.grant_table(registered_model) if may_manage else None,
            "at_text": at_text,
            "at_error": at_error,
            # After the panels: the policy they looked up on this instance is reused.
            "deployments": deployments.deployment_overview(
                user=request.user, registered_model=registered_model
            ),
            "may_change": permissions.has(request.user, Perm.CHANGE, registered_model),
        },
    )


@page
def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    registered_model = selectors.registered_model_get(user=request.user, name=name)
    version = selectors.version_get(
        user=request.user, registered_model=registered_model, number=number
    )
    jobs = selectors.job_list(user=request.user, version=version)
    latest: dict[str, PackagingJob] = {}
    for job in jobs:  # newest first: the first succeeded job of each kind is the one shown
        if job.status == PackagingJob.Status.SUCCEEDED:
            latest.setdefault(job.kind, job)
    return render(
        request,
        "registry/version_detail.html",
        {
            **panels.context("version", user=request.user, version=version),
            "registered_model": registered_model,
            "version": version,
            "lineage": _lineage([version])[version.pk],
            "may_request": permissions.has(request.user, Perm.REQUEST_PROMOTION, registered_model),
            "children": selectors.version_children(version),
            "jobs": jobs,
            "job_kinds": PackagingJob.Kind.choices,
            "may_change": permissions.has(request.user, Perm.CHANGE, registered_model),
            "formats": latest.get(PackagingJob.Kind.COMPARE_FORMATS),
            "parity": latest.get(PackagingJob.Kind.CONVERT_ONNX),
            "deployments": selectors.deployment_list(user=request.user, version=version),
            "evaluations": evaluation_views.shown(list(selectors.evaluation_list(version))),
        },
    )


def _svg_chart(result: dict[str, Any]) -> dict[str, Any]:
    """Grouped horizontal bars, one group per metric, one bar per version, each metric on its
    own axis (chart_axis; metrics differ in scale), stated under its name."""
    width, label_w, bar_h, gap = 640, 200, 14, 24
    span_w = width - label_w - 90
    rows, y = [], 0
    for metric in result["metrics"]:
        values = [v for v in metric["values"] if v is not None]
        start, end = chart_axis(values) if values else (0.0, 1.0)
        bars = []
        for i, value in enumerate(metric["values"]):
            length = 0 if value is None else fraction(value, start, end) * span_w
            bars.append(
                {
                    "y": y + i * bar_h,
                    "width": round(max(length, 1.0) if value is not None else 0, 1),
                    "value": value,
                    "version": result["versions"][i].version,
                    "series": i % 6,
                }
            )
        rows.append(
            {
                "name": metric["name"],
                "direction": metric["direction"],
                "y": y,
                "axis": (start, end),
                "bars": bars,
            }
        )
        y += len(metric["values"]) * bar_h + gap
    return {
        "rows": rows,
        "height": max(y, 1),
        "width": width,
        "label_w": label_w,
        "bar_h": bar_h - 2,
    }


@page
def compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two or more versions side by side: params and metrics, differences highlighted, and a
    chart of the metrics."""
    registered_model = selectors.registered_model_get(user=request.user, name=name)
    choices = list(
        selectors.version_list(
            user=request.user, filters=selectors.VersionFilters(registered_model=registered_model)
        )
        .order_by("-version")
        .values_list("version", flat=True)[:200]
    )
    # Ticked boxes compare oldest first (the baseline); ?versions=3,1 keeps the order given.
    picked = sorted((v for v in request.GET.getlist("v") if is_whole_number(v)), key=int)
    if not picked and request.GET.get("versions"):
        picked = [v for v in request.GET["versions"].split(",") if is_whole_number(v)]
    result, error = None, ""
    if picked:
        try:
            numbers = [whole_number(v, "versions") for v in picked]
            result = selectors.version_compare(
                user=request.user, registered_model=registered_model, numbers=numbers
            )
        except (ValidationFailed, NotFound) as exc:
            error = exc.message
    elif len(choices) >= 2:
        picked = [str(choices[1]), str(choices[0])]
        result = selectors.version_compare(
            user=request.user, registered_model=registered_model, numbers=[choices[1], choices[0]]
        )
    return render(
        request,
        "registry/compare.html",
        {
            "registered_model": registered_model,
            "choices": choices,
            "picked": picked,
            "result": result,
            "error": error,
            "chart": _svg_chart(result) if result else None,
            "evaluations": evaluation_views.compared(
                result["versions"],
                list(selectors.evaluation_list_many(result["versions"])),
                registered_model.metric_directions,
            )
            if result
            else [],
        },
        status=400 if error else 200,
    )


@page(methods=("POST",))
def version_job_start(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """Start a packaging job from the version page; refusals come back as messages."""
    registered_model = selectors.registered_model_get(user=request.user, name=name)
    version = selectors.version_get(
        user=request.user, registered_model=registered_model, number=number
    )
    kind = request.POST.get("kind", "")
    try:
        job, created = services.job_start(
            actor=Actor.from_request(request),
            version=version,
            kind=kind,
            force=request.POST.get("force") == "on",
        )
    except (ValidationFailed, Conflict) as exc:  # not allowed at all: the wrapper's 403/404
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{job.get_kind_display()} job #{job.pk} "
            f"{'queued' if created else 'already ' + job.status}.",
        )
    return redirect(f"{request.path.removesuffix('jobs/')}#jobs")


@page
def artifact_download(
    request: HttpRequest, name: str, number: int, artifact_id: int
) -> FileResponse:
    registered_model = selectors.registered_model_get(user=request.user, name=name)
    version = selectors.version_get(
        user=request.user, registered_model=registered_model, number=number
    )
    artifact = selectors.artifact_get(user=request.user, version=version, artifact_id=artifact_id)
    handle = services.artifact_open(actor=Actor.from_request(request), artifact=artifact)
    return FileResponse(
        handle, as_attachment=True, filename=artifact.filename, content_type=artifact.media_type
    )
