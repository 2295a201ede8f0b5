"""The outbox is a queue: every row is inserted, read once and deleted. Vacuum it after a
fixed number of dead rows rather than a fraction of a (tiny) table, without cost delays,
so the relay's index scan never wades through dead entries."""
from django.db import migrations

FORWARD = """ALTER TABLE prewarm_outbox SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000)"""
BACKWARD = """ALTER TABLE prewarm_outbox RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)"""


class Migration(migrations.Migration):
    dependencies = [("core", "0003_outbox_triggers")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
