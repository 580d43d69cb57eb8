from django.db import migrations, models

# Frozen copies of core/scopes.py's defaults as they were when keys got scopes.
INTEGRATION_DEFAULT = ["assistance", "inbound", "triggers"]
AGENT_DEFAULT = ["admin", "agent", "read"]


def backfill(apps, schema_editor):
    ApiKey = apps.get_model("core", "ApiKey")
    ApiKey.objects.filter(kind="integration").update(scopes=INTEGRATION_DEFAULT)
    ApiKey.objects.filter(kind="agent").update(scopes=AGENT_DEFAULT)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_team"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
