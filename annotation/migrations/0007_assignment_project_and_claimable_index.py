"""Assignment.project (= task.project, backfilled) with one index for an annotator's counts and reservations, and
a partial index of the tasks the queue can still hand out, in serving order."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def backfill_project(apps, schema_editor):
    Assignment = apps.get_model("annotation", "Assignment")
    ReviewTask = apps.get_model("annotation", "ReviewTask")
    Assignment.objects.update(
        project_id=models.Subquery(ReviewTask.objects.filter(pk=models.OuterRef("task_id")).values("project_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_routingpolicy_next_batch_queued_at"),
        ("synthstudio", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="assignment", name="annotation__annotat_cd6f76_idx"),
        migrations.AddField(
            model_name="assignment",
            name="project",
            field=models.ForeignKey(
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="synthstudio.project",
            ),
        ),
        migrations.RunPython(backfill_project, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="assignment",
            name="project",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="synthstudio.project",
            ),
        ),
        migrations.AlterField(
            model_name="assignment",
            name="annotator",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(fields=["annotator", "project", "status", "answered_at"], name="assignment_by_annotator"),
        ),
        migrations.AddIndex(
            model_name="reviewtask",
            index=models.Index(
                condition=models.Q(("claimed_count__lt", models.F("required_answers")), ("is_open", True)),
                fields=["project", "-priority", "id"],
                name="review_task_claimable",
            ),
        ),
    ]
