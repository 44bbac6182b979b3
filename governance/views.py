"""Reviewer pages: the promotion request form (with the readiness checklist shown live), the
request page (review timeline, the decisions the user may take), the review inbox, the audit
log and a model's access page. Forms post to the services, which decide; refusals come back
as messages or field errors, never a 500. Buttons a user may not use are not shown, and the
services refuse them anyway."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import Group, User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from core import permissions
from core.actors import Actor
from core.edge import instant, is_whole_number, whole_number
from core.errors import Conflict, DomainError, NotFound, ValidationFailed
from core.models import AuditEvent
from core.pages import page
from core.permissions import Perm
from core.refusals import refused
from governance import access, audit_display, card_source, compliance, promotions, selectors
from governance.models import PromotionRequest, Review
from registry import metric_direction
from registry import selectors as registry_selectors
from registry.models import ModelVersion

TARGETS = [(stage.value, stage.label) for stage in ModelVersion.PROMOTION_STAGES]
# Which form field shows a service's error about one of its arguments (else the form's top).
FORM_FIELDS = {
    "version": "version",
    "target_stage": "target",
    "target_alias": "target",
    "justification": "justification",
}


# --- Promotion requests ---------------------------------------------------------------------


def _checks_for(user: Any, model_name: str, number: str, target: str) -> promotions.Preview:
    """What the checklist shows for a would-be request: the checks under the model's policy
    against the version now in the target."""
    registered_model = registry_selectors.registered_model_get(user=user, name=model_name)
    version = registry_selectors.version_get(
        user=user, registered_model=registered_model, number=whole_number(number, "version")
    )
    stage, alias = promotions.split_target(target)
    return promotions.preview(version, stage=stage, alias=alias)


@page(methods=("GET", "POST"))
def request_new(request: HttpRequest) -> HttpResponse:
    """Ask for a version to be promoted. The model and version come from the query string (the
    version page links here); the checklist follows the chosen version and target."""
    source = request.POST if request.method == "POST" else request.GET
    model_name = source.get("model", "")
    registered_model = registry_selectors.registered_model_get(user=request.user, name=model_name)
    permissions.require(request.user, Perm.REQUEST_PROMOTION, registered_model)
    versions = list(
        registry_selectors.version_list(
            user=request.user,
            filters=registry_selectors.VersionFilters(registered_model=registered_model),
        ).order_by("-version")[:200]
    )
    form = {
        "version": source.get("version") or (str(versions[0].version) if versions else ""),
        "target": source.get("target", ModelVersion.Stage.PRODUCTION),
        "justification": source.get("justification", ""),
    }
    errors: dict[str, str] = {}
    aliases = sorted(registered_model.alias_map or {})
    if request.method == "POST" and form["target"] not in (
        *ModelVersion.PROMOTION_STAGES,
        *aliases,
    ):
        errors["target"] = "Choose production, staging or one of this model's aliases."
    elif request.method == "POST" and not form["justification"].strip():
        # Reviewers decide on the reasons given: the page asks for them (the API leaves them
        # to automation, which records its pipeline in the justification if it has one).
        errors["justification"] = "Say why this version should move: reviewers read it first."
    elif request.method == "POST":
        target = form["target"]
        try:
            version = registry_selectors.version_get(
                user=request.user,
                registered_model=registered_model,
                number=whole_number(form["version"], "version"),
            )
            stage, alias = promotions.split_target(target)
            created = promotions.promotion_request_create(
                actor=Actor.from_request(request),
                version=version,
                target_stage=stage,
                target_alias=alias,
                justification=form["justification"],
            )
        except (ValueError, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.status_code == 403:
                raise  # not allowed at all: the page wrapper's 403
            if isinstance(exc, DomainError):
                refused(request, exc)  # a gate's 409 (checks failing) is audited
            field = next(iter(getattr(exc, "fields", {})), "version")
            errors[FORM_FIELDS.get(field, "form")] = getattr(exc, "message", "Choose a version.")
        else:
            messages.success(
                request, f"Request #{created.pk} created: {created.get_status_display().lower()}."
            )
            return redirect("governance:request-detail", pk=created.pk)
    checklist = None
    if is_whole_number(form["version"]) and not errors.get("version"):
        try:
            checklist = _checks_for(
                request.user, registered_model.name, form["version"], form["target"]
            )
        except DomainError:
            checklist = None
    return render(
        request,
        "governance/request_new.html",
        {
            "registered_model": registered_model,
            "versions": versions,
            "form": form,
            "errors": errors,
            "targets": TARGETS,
            "aliases": aliases,
            "checklist": checklist,
        },
        status=400 if errors else 200,
    )


@page
def request_checks(request: HttpRequest) -> HttpResponse:
    """The checklist alone, for the form's script to refresh as the choice changes."""
    params = request.GET
    number = params.get("version", "")
    checklist = (
        _checks_for(
            request.user,
            params.get("model", ""),
            number,
            params.get("target", ModelVersion.Stage.PRODUCTION),
        )
        if is_whole_number(number)
        else None
    )
    return render(request, "governance/_checklist.html", {"checklist": checklist})


def _timeline(req: PromotionRequest) -> list[dict[str, Any]]:
    """The request's story in order: asked, each review, decided, applied or withdrawn."""
    rows = [
        {
            "at": req.created_at,
            "who": req.requested_by,
            "what": "requested",
            "text": req.justification,
        }
    ]
    for review in req.reviews.select_related("reviewer").order_by("created_at", "pk"):
        rows.append(
            {
                "at": review.created_at,
                "who": review.reviewer,
                "what": review.get_decision_display().lower(),
                "text": review.comment,
                "decision": review.decision,
                "digest": review.content_digest,
            }
        )
    if req.applied_at:
        rows.append(
            {
                "at": req.applied_at,
                "who": req.applied_by,
                "what": "applied",
                "text": req.status_message,
            }
        )
    elif req.decided_at and req.status != PromotionRequest.Status.PENDING:
        rows.append(
            {
                "at": req.decided_at,
                "who": None,
                "what": req.get_status_display().lower(),
                "text": req.status_message,
            }
        )
    return rows


def _evidence(request: HttpRequest, req: PromotionRequest, evaluation: Any) -> dict[str, Any]:
    """What a reviewer decides on, beside approvals and checks: the candidate's metrics against
    the version it replaces (direction-aware), its model card's state, and who may still
    approve (marking administrators while the policy still needs one)."""
    version, current = req.version, evaluation.current
    metrics: list[dict[str, Any]] = []
    try:
        if current is not None and current.pk != version.pk:
            compared = registry_selectors.version_compare(
                user=request.user,
                registered_model=req.registered_model,
                numbers=[current.version, version.version],
            )
            metrics = [
                {**m, "candidate": m["values"][1], "current": m["values"][0]}
                | {"change": m["changes"][0]}
                for m in compared["metrics"]
            ]
        else:
            row = registry_selectors.version_get(
                user=request.user, registered_model=req.registered_model, number=version.version
            )
            declared = req.registered_model.metric_directions
            metrics = [
                dict(
                    metric_direction.described(declared, m["name"]),
                    name=registry_selectors.metric_label(m),
                    candidate=m["value"],
                    current=None,
                    change=None,
                )
                for m in registry_selectors.version_children(row).metrics
            ]
    except NotFound:  # a version deleted since the request closed: no metrics to show
        pass
    eligible = []
    if req.status == PromotionRequest.Status.PENDING:
        administrators: set[int] = set()
        if evaluation.admin_needed and not evaluation.admin_approved:
            administrators = set(
                permissions.holders(
                    Perm.MANAGE_ACCESS, req.registered_model, granted_by_administrator=True
                ).values_list("pk", flat=True)
            )
        eligible = [
            {"user": u, "administrator": u.pk in administrators}
            for u in promotions.eligible_reviewers(req, evaluation)
        ]
    card = card_source.state(version)
    return {
        "metrics": metrics,
        "card": card,
        "card_label": card.status.replace("_", " ") if card else "",
        "eligible": eligible,
    }


@page
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    req = selectors.promotion_request_get(user=request.user, pk=pk)
    evaluation = promotions.evaluate(req)
    refusal = promotions.review_refusal(request.user, req, evaluation)
    return render(
        request,
        "governance/request_detail.html",
        {
            "req": req,
            "evaluation": evaluation,
            "evidence": _evidence(request, req, evaluation),
            "timeline": _timeline(req),
            "may_review": refusal is None,
            "review_refusal": refusal,
            "may_cancel": promotions.may_cancel(request.user, req),
            "may_apply": promotions.may_apply(request.user, req),
            "decisions": Review.Decision.choices,
            "comment_error": request.session.pop("comment_error", ""),
        },
    )


def _act(request: HttpRequest, pk: int, run: Any, done: str) -> HttpResponse:
    req = selectors.promotion_request_get(user=request.user, pk=pk)
    try:
        run(Actor.from_request(request), req)
    except (ValidationFailed, Conflict) as exc:  # refusals (403) go to the page wrapper
        refused(request, exc)  # a gate's 409 (content changed, checks failing) is audited
        messages.error(request, exc.message)
        if isinstance(exc, ValidationFailed) and "comment" in exc.fields:
            request.session["comment_error"] = exc.message
    else:
        messages.success(request, done)
    return redirect("governance:request-detail", pk=pk)


@page(methods=("POST",))
def request_review(request: HttpRequest, pk: int) -> HttpResponse:
    decision = request.POST.get("decision", "")
    label = dict(Review.Decision.choices).get(decision, decision)
    return _act(
        request,
        pk,
        lambda actor, req: promotions.promotion_request_review(
            actor=actor,
            promotion_request=req,
            decision=decision,
            comment=request.POST.get("comment", ""),
        ),
        f"Recorded: {label.lower()}.",
    )


@page(methods=("POST",))
def request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda actor, req: promotions.promotion_request_cancel(
            actor=actor, promotion_request=req, reason=request.POST.get("reason", "")
        ),
        "Request cancelled.",
    )


@page(methods=("POST",))
def request_apply(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda actor, req: promotions.promotion_request_apply(actor=actor, promotion_request=req),
        "Applied.",
    )


def _requests(request: HttpRequest, *, inbox: bool) -> HttpResponse:
    params = request.GET
    status = (
        params.get("status") if params.get("status") in PromotionRequest.Status.values else None
    )
    filters = selectors.RequestFilters(
        model=params.get("model") or None,
        status=None if inbox else status,
        requested_by_me=params.get("mine") == "1",
        awaiting_my_review=inbox,
    )
    qs = selectors.promotion_request_list(user=request.user, filters=filters).order_by(
        "-created_at", "-pk"
    )
    page_obj = Paginator(qs, 25).get_page(params.get("page"))
    return render(
        request,
        "governance/request_list.html",
        {
            "page_obj": page_obj,
            "blocked": _blocked(list(page_obj.object_list)),
            "params": params,
            "inbox": inbox,
            "statuses": PromotionRequest.Status.choices,
        },
    )


def _blocked(requests: list[PromotionRequest]) -> dict[int, str]:
    """Why each pending request on a page cannot be approved now (required readiness checks
    failing against what holds its target), by request id; a fixed number of queries."""
    pending = [r for r in requests if r.status == PromotionRequest.Status.PENDING]
    for r in pending:
        r.version.registered_model = r.registered_model  # the same row, read with the request
    previews = promotions.preview_many(
        [(r.version, r.target_stage, r.target_alias) for r in pending]
    )
    reasons = {}
    for r, faced in zip(pending, previews, strict=True):
        failing = [c.title for c in faced.checks if c.blocking]
        if failing:
            reasons[r.pk] = "Checks failing: " + "; ".join(failing)
    return reasons


@page
def request_list(request: HttpRequest) -> HttpResponse:
    return _requests(request, inbox=False)


@page
def inbox(request: HttpRequest) -> HttpResponse:
    """Pending requests the user may decide and has not reviewed yet."""
    return _requests(request, inbox=True)


@page
def model_compliance(request: HttpRequest, name: str) -> HttpResponse:
    """The model's compliance report for reviewers and auditors: whoever may view the model
    (the same report as the admin's and GET /api/v1/models/NAME/compliance/)."""
    registered_model = registry_selectors.registered_model_get(user=request.user, name=name)
    return render(
        request,
        "governance/compliance.html",
        {
            "registered_model": registered_model,
            "report": compliance.report(registered_model),
        },
    )


# --- Audit log ------------------------------------------------------------------------------

_VERSION_LABEL = re.compile(r" v(\d+)$")


def event_link(event: AuditEvent) -> str:
    """Where an event's object lives in the dashboard ("" when it has no page)."""
    name = event.registered_model_name
    if event.target_type == "governance.promotionrequest" and event.target_id.isdigit():
        return reverse("governance:request-detail", args=[int(event.target_id)])
    if event.target_type in ("registry.modelversion", "cards.modelcard") and name:
        found = _VERSION_LABEL.search(event.target_label)
        if found:
            view = (
                "registry:version-detail"
                if event.target_type == "registry.modelversion"
                else "cards:card"
            )
            return reverse(view, args=[name, int(found.group(1))])
    if name and event.registered_model_id:
        return reverse("registry:model-detail", args=[name])
    return ""


@page
def audit_log(request: HttpRequest) -> HttpResponse:
    params = request.GET
    errors: dict[str, str] = {}
    moments = {}
    for key in ("since", "until"):
        text = params.get(key, "").strip()
        try:
            moments[key] = instant(text, key, naive_is_utc=True) if text else None
        except ValidationFailed:
            moments[key], errors[key] = None, "Give a date and time like 2026-03-01T12:00 (UTC)."
    filters = selectors.AuditFilters(
        model=params.get("model") or None,
        actor=params.get("actor") or None,
        action=params.get("action") or None,
        since=moments["since"],
        until=moments["until"],
    )
    qs = selectors.audit_event_list(user=request.user, filters=filters).order_by("-sequence")
    page_obj = Paginator(qs, 50).get_page(params.get("page"))
    events = list(page_obj.object_list)
    for event, words in zip(events, audit_display.shown(events), strict=True):
        event.link = event_link(event)
        event.shown = words
    return render(
        request,
        "governance/audit_log.html",
        {"page_obj": page_obj, "events": events, "params": params, "errors": errors},
        status=400 if errors else 200,
    )


# --- Access ---------------------------------------------------------------------------------

PERMS = [(p.value, permissions.label(p)) for p in Perm]


@page(methods=("GET", "POST"))
def model_access(request: HttpRequest, name: str) -> HttpResponse:
    """Who holds which permission on a model; grant and revoke (managers only)."""
    registered_model = registry_selectors.registered_model_get(user=request.user, name=name)
    permissions.require(request.user, Perm.MANAGE_ACCESS, registered_model)
    errors: dict[str, str] = {}
    form = {"who": request.POST.get("who", "").strip(), "perm": request.POST.get("perm", "")}
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            perm = Perm(form["perm"])
        except ValueError:
            perm = None
            errors["perm"] = "Choose a permission."
        user = group = None
        who = form["who"]
        if who.startswith("group:"):
            group = Group.objects.filter(name=who.removeprefix("group:")).first()
        elif who:
            user = User.objects.filter(username=who, is_active=True).first()
        if user is None and group is None:
            errors["who"] = (
                "No such user or group; write a username, or group:NAME."
                if who
                else "Write a username, or group:NAME."
            )
        if action not in ("grant", "revoke"):
            errors["form"] = "Choose Grant or Revoke."
        if not errors and perm is not None:
            service = access.grant_add if action == "grant" else access.grant_remove
            try:
                service(
                    actor=Actor.from_request(request),
                    registered_model=registered_model,
                    perm=perm,
                    user=user,
                    group=group,
                )
            except DomainError as exc:
                if exc.is_access_refusal:
                    raise  # may not manage this model's access at all: the wrapper's 403
                refused(request, exc)  # administrator-only or self grants are audited
                errors["form"] = exc.message
            else:
                messages.success(
                    request,
                    f"{'Granted' if action == 'grant' else 'Revoked'} "
                    f"{dict(PERMS)[perm.value]} "
                    f"{'to' if action == 'grant' else 'from'} {who}.",
                )
                return redirect("governance:model-access", name=registered_model.name)
    return render(
        request,
        "governance/access.html",
        {
            "registered_model": registered_model,
            "table": permissions.grant_table(registered_model),
            "perms": PERMS,
            "form": form,
            "errors": errors,
        },
        status=400 if errors else 200,
    )
