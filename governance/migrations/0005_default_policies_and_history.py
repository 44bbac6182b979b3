"""Seed one policy per risk tier and record the stages and aliases that already exist as the
first rows of the stage history (their start is the last time the stage changed)."""

from django.db import migrations

BASIC = ["artifact", "signature", "signature_compatible", "metrics"]
DEFAULTS = {
    "low": {"production_approvals": 1, "required_checks": ["artifact"]},
    "medium": {"production_approvals": 1, "required_checks": BASIC},
    "high": {"production_approvals": 2, "required_checks": [*BASIC, "packaging",
                                                            "card_approved"]},
    "critical": {"production_approvals": 2, "admin_approval_required": True,
                 "required_checks": [*BASIC, "packaging", "card_approved"],
                 "rollback_fast_track": False},
}


def seed(apps, schema_editor):
    Policy = apps.get_model("governance", "Policy")
    for tier, fields in DEFAULTS.items():
        Policy.objects.get_or_create(risk_tier=tier, defaults=fields)
    ModelVersion = apps.get_model("registry", "ModelVersion")
    Alias = apps.get_model("registry", "Alias")
    StageHistory = apps.get_model("governance", "StageHistory")
    StageHistory.objects.bulk_create(
        StageHistory(registered_model_id=v.registered_model_id, version=v, kind="stage",
                     name=v.stage, started_at=v.stage_changed_at or v.updated_at)
        for v in ModelVersion.objects.exclude(stage="none").iterator())
    StageHistory.objects.bulk_create(
        StageHistory(registered_model_id=a.registered_model_id, version_id=a.version_id,
                     kind="alias", name=a.name, started_at=a.updated_at, started_by=a.updated_by)
        for a in Alias.objects.iterator())


class Migration(migrations.Migration):

    dependencies = [("governance", "0004_promotion_workflow"),
                    ("registry", "0002_drop_metric_name_value_index")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
