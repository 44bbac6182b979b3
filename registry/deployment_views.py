"""The model page's deployment actions (its Deployments section is drawn by
registry.views.model_detail from registry.deployments)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from core.actors import Actor
from core.errors import Conflict, NotFound
from core.pages import page
from registry import selectors, services
from registry.models import Deployment


# core.pages.page returns Any; registry.views is excused this in pyproject.toml's mypy overrides
@page(methods=("POST",))
def deployment_retire_page(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """Retire one active deployment of the model in the URL (404 if the model is invisible or
    the deployment is not its; 403 without change permission), then back to the model page
    with a message (POST/redirect/GET)."""
    registered_model = selectors.registered_model_get(user=request.user, name=name, details=False)
    deployment = selectors.deployment_get(user=request.user, pk=pk, retiring=True)
    if deployment.version.registered_model_id != registered_model.pk:
        raise NotFound("Deployment not found.", code="deployment_not_found")
    try:
        services.deployment_retire(actor=Actor.from_request(request), deployment=deployment)
    except Conflict as exc:  # already retired: say so, the page shows the current state
        messages.error(request, exc.message)
    else:
        messages.success(request, _retired_message(deployment))
    return redirect(reverse("registry:model-detail", args=[registered_model.name]) + "#deployments")


def _retired_message(deployment: Deployment) -> str:
    return (
        f"Retired the deployment of version {deployment.version.version} in "
        f"'{deployment.environment}' at {deployment.target}."
    )
