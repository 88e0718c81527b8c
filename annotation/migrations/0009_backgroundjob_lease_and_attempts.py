# The job lease of synthstudio.jobs (BackgroundJob.lease_holder, BackgroundJob.attempts).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0008_assignment_project_db_constraint"),
    ]

    operations = [
        migrations.AddField(
            model_name="labellingrun",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="labellingrun",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="signalsrun",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="signalsrun",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
    ]
