"""Chain the audit log: every event gets a gapless sequence number, the previous event's hash and
its own. Events written before this migration are chained in the order they were recorded."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core import chain


def chain_existing(apps, schema_editor):
    AuditEvent = apps.get_model("governance", "AuditEvent")
    prev = chain.GENESIS
    for sequence, event in enumerate(AuditEvent.objects.order_by("occurred_at", "pk")
                                     .iterator(chunk_size=2000), start=1):
        event.sequence, event.prev_hash = sequence, prev
        event.details = chain.normalise(event.details)
        event.client_address = chain.normalise_address(event.client_address)
        event.hash = chain.event_hash({name: getattr(event, name) for name in chain.FIELDS})
        event.save(update_fields=["sequence", "prev_hash", "hash", "details", "client_address"])
        prev = event.hash


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0001_grants_audit_tokens"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField("auditevent", "sequence",
                            models.PositiveBigIntegerField(null=True)),
        migrations.AddField("auditevent", "prev_hash",
                            models.CharField(max_length=64, default="")),
        migrations.AddField("auditevent", "hash", models.CharField(max_length=64, default="")),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.AlterField("auditevent", "sequence",
                              models.PositiveBigIntegerField(unique=True)),
        migrations.AlterField("auditevent", "prev_hash", models.CharField(max_length=64)),
        migrations.AlterField("auditevent", "hash", models.CharField(max_length=64)),
        migrations.AlterField(
            "auditevent", "actor",
            models.ForeignKey(blank=True, db_constraint=False, null=True,
                              on_delete=django.db.models.deletion.DO_NOTHING,
                              related_name="audit_events", to=settings.AUTH_USER_MODEL)),
        migrations.AlterField("auditevent", "registered_model_id",
                              models.BigIntegerField(blank=True, null=True)),
        migrations.AlterModelOptions("auditevent", {"ordering": ["-sequence"]}),
        migrations.AddIndex("auditevent", models.Index(fields=["registered_model_id", "-sequence"],
                                                       name="audit_model_seq")),
    ]
