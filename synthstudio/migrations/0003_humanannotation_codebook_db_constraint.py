"""HumanAnnotation.codebook gets its database constraint back (0002 dropped it for the hand-written SQL of the
review queue, which is gone)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('synthstudio', '0002_humanannotation_codebook_without_db_constraint'),
    ]

    operations = [
        migrations.AlterField(
            model_name='humanannotation',
            name='codebook',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='synthstudio.codebook'),
        ),
    ]
