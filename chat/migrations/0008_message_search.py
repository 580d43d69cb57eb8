"""Message search indexes (chat/search): a GIN index on PostgreSQL, FTS5 + triggers on
SQLite. Each engine gets only its own; other databases get nothing."""

from django.db import migrations

POSTGRES_FORWARD = [
    "CREATE INDEX IF NOT EXISTS chat_message_fts_gin "
    "ON chat_message USING GIN (to_tsvector('simple', message))",
]
POSTGRES_BACKWARD = ["DROP INDEX IF EXISTS chat_message_fts_gin"]

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS chat_message_fts USING fts5("
    "message, content='chat_message', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS chat_message_fts_ai AFTER INSERT ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(rowid, message) VALUES (new.id, new.message); END",
    "CREATE TRIGGER IF NOT EXISTS chat_message_fts_ad AFTER DELETE ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, message) "
    "VALUES ('delete', old.id, old.message); END",
    "CREATE TRIGGER IF NOT EXISTS chat_message_fts_au AFTER UPDATE OF message ON chat_message "
    "BEGIN INSERT INTO chat_message_fts(chat_message_fts, rowid, message) "
    "VALUES ('delete', old.id, old.message); "
    "INSERT INTO chat_message_fts(rowid, message) VALUES (new.id, new.message); END",
    # index the messages that exist already
    "INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS chat_message_fts_au",
    "DROP TRIGGER IF EXISTS chat_message_fts_ad",
    "DROP TRIGGER IF EXISTS chat_message_fts_ai",
    "DROP TABLE IF EXISTS chat_message_fts",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0007_per_agent_unread")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]
