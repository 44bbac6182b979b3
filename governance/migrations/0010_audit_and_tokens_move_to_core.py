"""The audit log and API tokens now belong to the kernel (core 0001 adopts their tables as
they are); governance stops describing them. Nothing changes in the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0009_sso_group_mappings_identities"),
        ("core", "0001_adopt_audit_and_tokens"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ApiToken"),
                migrations.DeleteModel(name="AuditEvent"),
            ],
            database_operations=[],
        ),
    ]
