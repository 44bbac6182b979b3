"""Every version has a card: give versions registered before cards existed an empty one."""

from django.db import migrations
from django.utils import timezone

SECTIONS = ["intended_use", "out_of_scope", "training_data", "evaluation_data", "performance",
            "limitations", "bias_fairness", "ethical_considerations", "recommendations",
            "caveats"]


def create(apps, schema_editor):
    ModelVersion = apps.get_model("registry", "ModelVersion")
    ModelCard = apps.get_model("cards", "ModelCard")
    CardRevision = apps.get_model("cards", "CardRevision")
    content = {"model_details": {"authors": [], "model_type": "", "architecture": ""},
               "sections": {key: "" for key in SECTIONS},
               "metadata": {"languages": [], "datasets": [], "tags": [], "license": "",
                            "base_model": "", "library_name": "", "pipeline_tag": ""}}
    now = timezone.now()
    for version in ModelVersion.objects.filter(card__isnull=True).iterator():
        card = ModelCard.objects.create(version=version,
                                        registered_model_id=version.registered_model_id,
                                        content=content, created_at=now, updated_at=now)
        CardRevision.objects.create(card=card, number=1, content=content, created_at=now,
                                    note="Created for a version registered before cards")


class Migration(migrations.Migration):

    dependencies = [("cards", "0001_model_cards"), ("registry", "0002_drop_metric_name_value_index")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
