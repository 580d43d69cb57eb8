# Message files: stored under random names (chat.models.message_file_path), the
# uploaded name kept in `file_name` for display and Content-Disposition.

import os

import chat.models
from django.db import migrations, models


def backfill_file_name(apps, schema_editor):
    # Files uploaded before this migration are stored under their own name
    # (messages/<year>/<month>/<name>): that name is what the agent gave.
    Message = apps.get_model("chat", "Message")
    for message in Message.objects.exclude(file="").exclude(file__isnull=True).only("pk", "file"):
        Message.objects.filter(pk=message.pk).update(
            file_name=os.path.basename(message.file.name)[:255]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_assistance"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="file_name",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.AlterField(
            model_name="message",
            name="file",
            field=models.FileField(
                blank=True, max_length=300, null=True, upload_to=chat.models.message_file_path
            ),
        ),
        migrations.RunPython(backfill_file_name, migrations.RunPython.noop, elidable=True),
    ]
