"""Install the triggers that write the outbox (see core.triggers)."""
from django.db import migrations

from core import triggers


class Migration(migrations.Migration):
    dependencies = [("core", "0002_versions_and_outbox")]

    operations = [migrations.RunSQL(triggers.install_sql(), triggers.uninstall_sql())]
