"""Every version from one sequence (so versions survive delete + re-insert and follow commits),
deleted rows' last versions for their tombstones, and the triggers for the statements that
fired none (UPDATE of join tables, TRUNCATE, region INSERT/DELETE; see core.triggers).

The triggers are replaced in place; there is no going back past this migration."""
import core.models
from core import triggers
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0005_code_validator_rejects_trailing_newline'),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE SEQUENCE {triggers.VERSION_SEQUENCE};"
            # Above every version written so far, so no new version can tie an old one.
            f" SELECT setval('{triggers.VERSION_SEQUENCE}', greatest(1,"
            " (SELECT max(version) FROM core_profile), (SELECT max(version) FROM core_region),"
            " (SELECT max(epg_version) FROM core_channel)));",
            f"DROP SEQUENCE {triggers.VERSION_SEQUENCE};",
        ),
        migrations.AlterField(
            model_name='channel',
            name='epg_version',
            field=models.BigIntegerField(db_default=core.models.NextVersion(), editable=False),
        ),
        migrations.AlterField(
            model_name='profile',
            name='version',
            field=models.BigIntegerField(db_default=core.models.NextVersion(), editable=False),
        ),
        migrations.AlterField(
            model_name='region',
            name='version',
            field=models.BigIntegerField(db_default=core.models.NextVersion(), editable=False),
        ),
        migrations.CreateModel(
            name='DeletedRow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=16)),
                ('row_id', models.BigIntegerField()),
                ('version', models.BigIntegerField()),
                ('deleted_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
            options={
                'db_table': 'prewarm_deleted',
                'indexes': [models.Index(fields=['deleted_at'], name='prewarm_deleted_at')],
                'constraints': [models.UniqueConstraint(fields=('kind', 'row_id'), name='prewarm_deleted_once')],
            },
        ),
        migrations.RunSQL(triggers.uninstall_sql() + "\n" + triggers.install_sql()),
    ]
