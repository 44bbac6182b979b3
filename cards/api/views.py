"""REST endpoints for model cards: read, edit, revisions, diff, restore, review, export,
import, and a markdown preview for editors."""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from cards import content as card_content
from cards import formats, selectors, services
from cards.api import serializers as out
from cards.models import CardReview, ModelCard
from core.api import DownloadRenderer
from core.edge import whole_number
from core.errors import NotFound
from core.markdown import render_markdown
from core.serializers import StrictInput
from core.views import ApiView
from registry.selectors import ModelLookups


class CardIn(StrictInput):
    base_revision = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="The revision you edited; a newer save by someone else is then a 409",
    )
    model_details = serializers.DictField(required=False)
    sections = serializers.DictField(required=False)
    metadata = serializers.DictField(required=False)
    note = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)


class CardReviewIn(StrictInput):
    decision = serializers.ChoiceField(choices=CardReview.Decision.choices)
    comment = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )


class ImportIn(StrictInput):
    readme = serializers.CharField(
        allow_blank=False, trim_whitespace=False, max_length=formats.MAX_IMPORT
    )
    base_revision = serializers.IntegerField(min_value=1, required=False)


class PreviewIn(StrictInput):
    text = serializers.CharField(
        allow_blank=True, trim_whitespace=False, max_length=card_content.MAX_SECTION
    )


class CardView(ModelLookups, ApiView):
    def card(self, name: str, number: int) -> ModelCard:
        return selectors.card_get(user=self.request.user, version=self.version(name, number))

    def answer(self, name: str, number: int) -> Response:
        card = self.card(name, number)
        return Response(out.CardOut(card, context={"user": self.request.user}).data)


class CardDetailView(CardView):
    @extend_schema(responses=out.CardOut)
    def get(self, request: Request, name: str, number: int) -> Response:
        return self.answer(name, number)

    @extend_schema(request=CardIn, responses=out.CardOut)
    def patch(self, request: Request, name: str, number: int) -> Response:
        data = self.valid(CardIn)
        base, note = data.pop("base_revision", None), data.pop("note", "")
        services.card_update(
            actor=self.actor(),
            card=self.card(name, number),
            changes=data,
            base_revision=base,
            note=note,
        )
        return self.answer(name, number)


class CardRevisionsView(CardView):
    @extend_schema(responses=out.CardRevisionsOut)
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(out.CardRevisionsOut(self.card(name, number)).data)


class CardDiffView(CardView):
    @extend_schema(
        parameters=[OpenApiParameter("from", int), OpenApiParameter("to", int)],
        responses=out.CardDiffOut,
    )
    def get(self, request: Request, name: str, number: int) -> Response:
        card = self.card(name, number)
        params = request.query_params
        a = whole_number(params["from"], "from") if "from" in params else card.revision - 1
        b = whole_number(params["to"], "to") if "to" in params else card.revision
        return Response({"from": a, "to": b, "changes": services.diff(card, a, b)})


class CardRestoreView(CardView):
    @extend_schema(request=None, responses=out.CardOut)
    def post(self, request: Request, name: str, number: int, revision: int) -> Response:
        services.card_restore(actor=self.actor(), card=self.card(name, number), number=revision)
        return self.answer(name, number)


class CardSubmitView(CardView):
    @extend_schema(request=None, responses=out.CardOut)
    def post(self, request: Request, name: str, number: int) -> Response:
        services.card_submit(actor=self.actor(), card=self.card(name, number))
        return self.answer(name, number)


class CardReviewView(CardView):
    @extend_schema(request=CardReviewIn, responses=out.CardOut)
    def post(self, request: Request, name: str, number: int) -> Response:
        services.card_review(
            actor=self.actor(), card=self.card(name, number), **self.valid(CardReviewIn)
        )
        return self.answer(name, number)


class CardImportView(CardView):
    @extend_schema(request=ImportIn, responses=out.CardImportOut)
    def post(self, request: Request, name: str, number: int) -> Response:
        data = self.valid(ImportIn)
        changes, report = formats.from_hf_readme(data["readme"])
        services.card_update(
            actor=self.actor(),
            card=self.card(name, number),
            changes=changes,
            base_revision=data.get("base_revision"),
            note="Imported from a Hugging Face README",
        )
        context = {"user": request.user, "report": report}
        return Response(out.CardImportOut(self.card(name, number), context=context).data)


class MarkdownRenderer(DownloadRenderer):
    media_type, format = "text/markdown", "md"


EXPORTS = {
    "json": ("application/json", "json"),
    "md": ("text/markdown; charset=utf-8", "md"),
    "hf": ("text/markdown; charset=utf-8", "md"),
}


def export_response(card: ModelCard, file_format: str) -> HttpResponse:
    """The card as a download; shared by the API and the pages."""
    if file_format not in EXPORTS:
        raise NotFound(
            "Export as export.json, export.md or export.hf (a Hugging Face README.md).",
            code="unknown_format",
        )
    media_type, suffix = EXPORTS[file_format]
    body = {
        "json": lambda: json.dumps(formats.to_json(card), indent=2, default=str),
        "md": lambda: formats.to_markdown(card),
        "hf": lambda: formats.to_hf_readme(card),
    }[file_format]()
    stem = (
        "README"
        if file_format == "hf"
        else (f"{card.registered_model.name}-v{card.version.version}-card")
    )
    response = HttpResponse(body, content_type=media_type)
    response["Content-Disposition"] = f'attachment; filename="{stem}.{suffix}"'
    return response


class CardExportView(CardView):
    renderer_classes = [renderers.JSONRenderer, MarkdownRenderer]

    @extend_schema(
        responses={
            (200, "application/json"): OpenApiResponse(out.CardExportOut),
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR),
        }
    )
    def get(self, request: Request, name: str, number: int, file_format: str) -> HttpResponse:
        return export_response(self.card(name, number), file_format)


class MarkdownPreviewView(ApiView):
    """Markdown rendered and sanitised exactly as pages show it (for live previews)."""

    @extend_schema(request=PreviewIn, responses=out.MarkdownPreviewOut)
    def post(self, request: Request) -> Response:
        html = render_markdown(self.valid(PreviewIn)["text"])
        return Response(out.MarkdownPreviewOut({"html": html}).data)
