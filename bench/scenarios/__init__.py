"""The scenarios of `python -m bench run`: each takes the run's context and adds rows to its results."""

# In the order a run takes them: the read load before the writes, the pipeline, then the
# verifier over what they all wrote, the warm-up (which rewrites every entry) last.
SCENARIOS = ("api", "freshness", "memory", "lag", "fanout", "verify", "warm")
# The writers of the freshness scenario, in the report's column order.
WRITERS = ("orm_save", "queryset_update", "bulk_create", "raw_sql_django", "psql_external")
