# The job lease of synthstudio.jobs (BackgroundJob.lease_holder, BackgroundJob.attempts).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("evaluation", "0006_judgerun_is_offline"),
    ]

    operations = [
        migrations.AddField(
            model_name="benchmarkrun",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="benchmarkrun",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="exportjob",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="exportjob",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="labelstudioimportjob",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="labelstudioimportjob",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="metricsrefresh",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="metricsrefresh",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="refinementrun",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="refinementrun",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
        migrations.AddField(
            model_name="snapshotjob",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="How many times a worker started the job."),
        ),
        migrations.AddField(
            model_name="snapshotjob",
            name="lease_holder",
            field=models.CharField(blank=True, help_text="pid@host of the process running it.", max_length=255),
        ),
    ]
