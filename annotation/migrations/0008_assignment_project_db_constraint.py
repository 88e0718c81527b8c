"""Assignment.project gets its database constraint back (0007 added it without one for the hand-written SQL
of the review queue, which is gone)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0007_assignment_project_and_claimable_index'),
        ('synthstudio', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='assignment',
            name='project',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='synthstudio.project'),
        ),
    ]
