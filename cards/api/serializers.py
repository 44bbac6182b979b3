"""Output shapes of the model-card API. Each serializer renders its answer and declares its
fields for the OpenAPI schema, so the documented shape is the one the code writes
(tests/openapi_check.py holds every test's answers to it)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cards import content as card_content
from cards import formats, selectors, services
from cards.models import ModelCard
from core.serializers import iso, username
from registry.models import EvaluationResult


class CardDetailsOut(serializers.Serializer):
    name = serializers.CharField(help_text="From the registry")
    version = serializers.IntegerField(help_text="From the registry")
    date = serializers.DateField(help_text="The version's registration date")
    flavor = serializers.CharField()
    authors = serializers.ListField(child=serializers.CharField())
    model_type = serializers.CharField()
    architecture = serializers.CharField()


class CardMetadataOut(serializers.Serializer):
    """Hugging Face card metadata."""

    languages = serializers.ListField(child=serializers.CharField())
    datasets = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())
    license = serializers.CharField()
    base_model = serializers.CharField()
    library_name = serializers.CharField()
    pipeline_tag = serializers.CharField()


class CardMetricOut(serializers.Serializer):
    type = serializers.CharField(help_text="The metric's name")
    value = serializers.FloatField()
    dataset = serializers.CharField(allow_null=True)
    split = serializers.CharField(allow_null=True)


class CardEvaluationOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=EvaluationResult.Kind.choices)
    dataset = serializers.CharField(allow_null=True)
    split = serializers.CharField(allow_null=True)
    # A declared field: the serializer's metaclass takes it out of the class (the stubs see
    # Serializer.data).
    data = serializers.DictField(help_text="As recorded, by kind")  # type: ignore[assignment]


class CardQuantitativeOut(serializers.Serializer):
    performance_metrics = CardMetricOut(many=True)
    evaluations = CardEvaluationOut(
        many=True, help_text="Confusion matrices, curves and metrics by slice, as recorded"
    )


class CardExportOut(serializers.Serializer):
    """The card as export.json writes it (cards/schema/model-card-v1.schema.json)."""

    schema = serializers.CharField(help_text=f"Always {card_content.SCHEMA}")
    format_version = serializers.IntegerField(help_text=f"Always {formats.JSON_FORMAT}")
    status = serializers.CharField(help_text="draft, in_review, changes_requested or approved")
    revision = serializers.IntegerField()
    model_details = CardDetailsOut()
    sections = serializers.DictField(
        child=serializers.CharField(), help_text="Markdown, by section key"
    )
    metadata = CardMetadataOut()
    quantitative_analysis = CardQuantitativeOut()

    def to_representation(self, card: ModelCard) -> dict[str, Any]:
        return formats.to_json(card)


class CardCompletenessOut(serializers.Serializer):
    # A declared field: the serializer's metaclass takes it out of the class (the stubs
    # see Field.required).
    required = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    missing = serializers.ListField(child=serializers.CharField())
    percent = serializers.IntegerField()
    filled = serializers.IntegerField()
    total = serializers.IntegerField()


class CardReviewStateOut(serializers.Serializer):
    approved_by = serializers.ListField(child=serializers.CharField())
    approvals_needed = serializers.IntegerField()
    admin_approval_needed = serializers.BooleanField()
    why_you_may_not_review = serializers.CharField(allow_null=True)


class CardOut(CardExportOut):
    """A card with its version, editors, completeness and review state (context: `user`)."""

    model = serializers.CharField()
    version = serializers.IntegerField()
    last_edited_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()
    submitted_by = serializers.CharField(allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    completeness = CardCompletenessOut()
    review = CardReviewStateOut()

    def to_representation(self, card: ModelCard) -> dict[str, Any]:
        required = services.required_sections(card)
        done = card_content.completeness(card.content, required)
        approvers, needed, admin_needed = services.approvals(card)
        return {
            **super().to_representation(card),
            "model": card.registered_model.name,
            "version": card.version.version,
            "last_edited_by": username(card.last_edited_by),
            "updated_at": iso(card.updated_at),
            "submitted_by": username(card.submitted_by),
            "approved_at": iso(card.approved_at),
            "completeness": {
                "required": required,
                "missing": done.missing,
                "percent": done.percent,
                "filled": done.filled,
                "total": done.total,
            },
            "review": {
                "approved_by": [u.username for u in approvers],
                "approvals_needed": needed,
                "admin_approval_needed": admin_needed,
                "why_you_may_not_review": services.review_refusal(self.context["user"], card),
            },
        }


class CardImportReportOut(serializers.Serializer):
    unmapped_metadata = serializers.ListField(child=serializers.CharField())
    unmapped_sections = serializers.ListField(child=serializers.CharField())
    skipped_generated = serializers.ListField(child=serializers.CharField())


class CardImportOut(CardOut):
    """The card after an import, with what of the README did not map (context: `report`)."""

    import_report = CardImportReportOut()

    def to_representation(self, card: ModelCard) -> dict[str, Any]:
        return {**super().to_representation(card), "import_report": self.context["report"]}


class CardRevisionOut(serializers.Serializer):
    number = serializers.IntegerField()
    author = serializers.CharField(allow_null=True)
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class CardRevisionsOut(serializers.Serializer):
    revisions = CardRevisionOut(many=True)

    def to_representation(self, card: ModelCard) -> dict[str, Any]:
        return {
            "revisions": [
                {
                    "number": r.number,
                    "author": username(r.author),
                    "note": r.note,
                    "created_at": iso(r.created_at),
                }
                for r in selectors.revisions(card)
            ]
        }


class CardChangeOut(serializers.Serializer):
    field = serializers.CharField(help_text="part.key, e.g. sections.intended_use")
    title = serializers.CharField()
    lines = serializers.ListField(child=serializers.CharField(), help_text="Unified diff lines")


class CardDiffOut(serializers.Serializer):
    """What changed between two revisions ("from" is a Python keyword: fields are listed)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": serializers.IntegerField(help_text="The older revision"),
            "to": serializers.IntegerField(help_text="The newer revision"),
            "changes": CardChangeOut(many=True),
        }


class MarkdownPreviewOut(serializers.Serializer):
    html = serializers.CharField(help_text="Rendered and sanitised as pages show it")
