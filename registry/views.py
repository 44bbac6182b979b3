"""Server-rendered pages: a selector (404 if invisible), then a template."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime

from cards.models import ModelCard
from governance import history, permissions, policies
from governance.actors import Actor
from governance.permissions import Perm
from governance.refusals import refused
from registry import selectors, services
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.models import ModelVersion, PackagingJob, RegisteredModel


def page(view: Callable[..., HttpResponse] | None = None, *,
         methods: tuple[str, ...] = ("GET",)) -> Any:
    """Signed-in users only, only the given HTTP methods (405 otherwise; the permission matrix
    reads them from `wrapper.http_methods`); domain NotFound/Forbidden become 404/403."""
    if view is None:
        return lambda v: page(v, methods=methods)

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in methods and not (request.method == "HEAD" and "GET" in methods):
            return HttpResponseNotAllowed(methods)
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            refused(request, exc)
            raise Http404(exc.message) from None
        except Forbidden as exc:
            refused(request, exc)
            raise PermissionDenied(exc.message) from None

    wrapper.http_methods = methods  # type: ignore[attr-defined]
    return wrapper


@page
def model_list(request: HttpRequest) -> HttpResponse:
    params = request.GET
    filters = selectors.ModelFilters(
        name_contains=params.get("name") or None,
        stage=params.get("stage") if params.get("stage") in ModelVersion.Stage.values else None,
        risk_tier=params.get("risk_tier") if params.get("risk_tier") in
        RegisteredModel.RiskTier.values else None,
        q=params.get("q") or None)
    try:
        queryset = selectors.registered_model_list(user=request.user, filters=filters)
        page_obj = Paginator(queryset, 25).get_page(params.get("page"))
    except ValidationFailed as exc:
        messages.error(request, exc.message)
        page_obj = Paginator(RegisteredModel.objects.none(), 25).get_page(1)
    return render(request, "registry/model_list.html", {
        "page_obj": page_obj, "params": params, "stages": ModelVersion.Stage.choices,
        "risk_tiers": RegisteredModel.RiskTier.choices})


@page
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    rm = selectors.registered_model_get(user=request.user, name=name)
    versions = selectors.version_list(user=request.user,
                                      filters=selectors.VersionFilters(registered_model=rm))
    at_text, at_state, at_error = request.GET.get("at", "").strip(), None, ""
    if at_text:
        moment = parse_datetime(at_text)
        if moment is None:
            at_error = "Give a date and time like 2026-03-01 12:00 (UTC)."
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            at_state = history.at_instant(rm, moment)
    return render(request, "registry/model_detail.html", {
        "registered_model": rm, "versions": versions.order_by("-version")[:200],
        "policy": policies.policy_for(rm),
        "production_history": history.timeline(rm, kind="stage", name="production", limit=20),
        "at_text": at_text, "at_state": at_state, "at_error": at_error})


@page
def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    rm = selectors.registered_model_get(user=request.user, name=name)
    version = selectors.version_get(user=request.user, registered_model=rm, number=number)
    jobs = selectors.job_list(user=request.user, version=version)
    latest = {}
    for job in jobs:  # newest first: the first succeeded job of each kind is the one shown
        if job.status == PackagingJob.Status.SUCCEEDED:
            latest.setdefault(job.kind, job)
    return render(request, "registry/version_detail.html", {
        "registered_model": rm, "version": version,
        "children": selectors.version_children(version),
        "card": ModelCard.objects.filter(version=version).only("status").first(),
        "jobs": jobs, "job_kinds": PackagingJob.Kind.choices,
        "may_change": permissions.has(request.user, Perm.CHANGE, rm),
        "formats": latest.get(PackagingJob.Kind.COMPARE_FORMATS),
        "parity": latest.get(PackagingJob.Kind.CONVERT_ONNX),
        "deployments": selectors.deployment_list(user=request.user, version=version)})


@page(methods=("POST",))
def version_job_start(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """Start a packaging job from the version page; refusals come back as messages."""
    rm = selectors.registered_model_get(user=request.user, name=name)
    version = selectors.version_get(user=request.user, registered_model=rm, number=number)
    kind = request.POST.get("kind", "")
    try:
        job, created = services.job_start(actor=Actor.from_request(request), version=version,
                                          kind=kind, force=request.POST.get("force") == "on")
    except (ValidationFailed, Conflict) as exc:  # not allowed at all: the wrapper's 403/404
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{job.get_kind_display()} job #{job.pk} "
                                  f"{'queued' if created else 'already ' + job.status}.")
    return redirect(f"{request.path.removesuffix('jobs/')}#jobs")


@page
def artifact_download(request: HttpRequest, name: str, number: int,
                      artifact_id: int) -> FileResponse:
    rm = selectors.registered_model_get(user=request.user, name=name)
    version = selectors.version_get(user=request.user, registered_model=rm, number=number)
    artifact = selectors.artifact_get(user=request.user, version=version, artifact_id=artifact_id)
    handle = services.artifact_open(actor=Actor.from_request(request), artifact=artifact)
    return FileResponse(handle, as_attachment=True, filename=artifact.filename,
                        content_type=artifact.media_type)
