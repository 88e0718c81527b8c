# The job lease of synthstudio.jobs (BackgroundJob.lease_holder, BackgroundJob.attempts).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0003_endpoint_keys_encrypted"),
    ]

    operations = [
        migrations.AddField(
            model_name="generationrun",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="generationrun",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
    ]
