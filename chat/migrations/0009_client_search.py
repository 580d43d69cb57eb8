"""Client search on PostgreSQL (chat/search): trigram indexes for the substring matches
(`name`/`email` case-insensitive, as Django's icontains writes them: UPPER(col::text),
and `phone` digits) and the exact, case-insensitive tag. pg_trgm ships with PostgreSQL and is a trusted extension (PG 13+):
the database owner may create it. Nothing on other databases (SQLite scans the
organization's clients; the embedded default is for small installations)."""

from django.db import migrations

POSTGRES_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS chat_client_name_trgm "
    "ON chat_client USING GIN (UPPER(name::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS chat_client_email_trgm "
    "ON chat_client USING GIN (UPPER(email::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS chat_client_phone_trgm "
    "ON chat_client USING GIN (phone gin_trgm_ops)",
    # tag__iexact: without an index on this branch the OR of the others is a table scan
    "CREATE INDEX IF NOT EXISTS chat_client_tag_upper ON chat_client (UPPER(tag::text))",
]
POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS chat_client_tag_upper",
    "DROP INDEX IF EXISTS chat_client_phone_trgm",
    "DROP INDEX IF EXISTS chat_client_email_trgm",
    "DROP INDEX IF EXISTS chat_client_name_trgm",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0008_message_search")]

    operations = [migrations.RunPython(_run(POSTGRES_FORWARD), _run(POSTGRES_BACKWARD))]
