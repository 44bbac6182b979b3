"""On PostgreSQL, refuse UPDATE, DELETE and TRUNCATE on the audit table in the database itself,
so not even a raw SQL statement from the application can rewrite history. (SQLite has no
equivalent guard; there the hash chain is what detects tampering.)"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION modelgate_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER auditevent_append_only BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION modelgate_audit_append_only();
CREATE TRIGGER auditevent_no_truncate BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION modelgate_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS auditevent_no_truncate ON governance_auditevent;
DROP TRIGGER IF EXISTS auditevent_append_only ON governance_auditevent;
DROP FUNCTION IF EXISTS modelgate_audit_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)
    return run


class Migration(migrations.Migration):

    dependencies = [("governance", "0002_audit_hash_chain")]

    operations = [migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(BACKWARD))]
