"""SQL for the triggers that feed the outbox: every change to a table behind the cache, made by
the ORM, QuerySet.update, bulk_create, raw SQL or another service, writes an outbox row in the
same transaction and NOTIFYs the relay.

Dependent rows "touch" their parent (UPDATE ... SET version = version) and the parent's
BEFORE trigger bumps its version, so one event kind per cached family is enough:
subscriptions -> profile, programmes -> channel, licences and packages -> region.
Statement-level triggers with transition tables keep a 100k-row UPDATE to one outbox row.
A change to a name a cached entry embeds (region code or time zone, ISP or plan code)
touches the rows whose entries carry it, so every change moves a version.

Writers with `session_replication_role = replica` (logical replication apply,
`pg_restore --disable-triggers`, `seed_demo`) fire none of these: run
`manage.py cache_verify --all --repair` (or `warm --all`) after one.
"""

NOTIFY_CHANNEL = "prewarm_outbox"
# One sequence numbers every version of every cached row: a row's next version is always
# above any version it (or a row deleted before it with the same id) ever had, and a row's
# versions follow its commits (the BEFORE trigger runs under the row's lock).
VERSION_SEQUENCE = "prewarm_version_seq"
DELETED_TABLE = "prewarm_deleted"

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION prewarm_emit(p_kind text, p_ids bigint[]) RETURNS void AS $$
BEGIN
  IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN RETURN; END IF;
  INSERT INTO prewarm_outbox (kind, ids, created_at) VALUES (p_kind, p_ids, clock_timestamp());
  PERFORM pg_notify('{NOTIFY_CHANNEL}', p_kind);
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION prewarm_bump_version() RETURNS trigger AS $$
BEGIN NEW.version := nextval('{VERSION_SEQUENCE}'); RETURN NEW; END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION prewarm_bump_epg_version() RETURNS trigger AS $$
BEGIN NEW.epg_version := nextval('{VERSION_SEQUENCE}'); RETURN NEW; END $$ LANGUAGE plpgsql;

-- A deleted row's last version: the rebuild that finds the row gone writes a tombstone
-- with it, which refuses late writes of the old row but not the next row with that id.
CREATE OR REPLACE FUNCTION prewarm_record_deleted(p_kind text, p_ids bigint[], p_versions bigint[])
RETURNS void AS $$
BEGIN
  INSERT INTO {DELETED_TABLE} (kind, row_id, version, deleted_at)
  SELECT p_kind, d.id, d.version, now() FROM unnest(p_ids, p_versions) AS d(id, version)
  ON CONFLICT (kind, row_id) DO UPDATE
    SET version = greatest({DELETED_TABLE}.version, EXCLUDED.version), deleted_at = EXCLUDED.deleted_at;
END $$ LANGUAGE plpgsql;

-- Touch every region (in id order, so concurrent callers cannot deadlock).
CREATE OR REPLACE FUNCTION prewarm_touch_all_regions() RETURNS void AS $$
BEGIN
  UPDATE core_region SET version = version
   WHERE id IN (SELECT id FROM core_region ORDER BY id FOR UPDATE);
END $$ LANGUAGE plpgsql;

-- Every channel's fragments, when a time zone comes into use: fragments of a zone nobody
-- used were not kept current (or never built).
CREATE OR REPLACE FUNCTION prewarm_emit_all_channels() RETURNS void AS $$
BEGIN
  PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM core_channel ORDER BY id));
END $$ LANGUAGE plpgsql;
"""

# Profiles whose cached copy embeds a changed name: touching them bumps their versions, so
# the rebuild's write is ordered by Postgres (not a tie broken by some host's clock), and
# their own UPDATE trigger emits the event.
_TOUCH_PROFILES = "UPDATE core_profile SET version = version WHERE id IN ({})"
_TOUCH_ALL_REGIONS = "PERFORM prewarm_touch_all_regions();"
_NEW_TIMEZONE = (
    "IF EXISTS (SELECT 1 FROM n WHERE n.timezone NOT IN"
    " (SELECT timezone FROM core_region WHERE id NOT IN (SELECT id FROM n)){old}) THEN"
    " PERFORM prewarm_emit_all_channels(); END IF;"
)

# table -> event -> body. Row-event bodies see transition tables `n` (new) and `o` (old);
# TRUNCATE bodies run BEFORE the truncation and read the rows that are about to go.
STATEMENT_TRIGGERS = {
    "core_profile": {
        "INSERT": "PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM n));",
        "UPDATE": "PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM n));",
        "DELETE": "PERFORM prewarm_record_deleted('profile', ARRAY(SELECT id FROM o ORDER BY id),"
        " ARRAY(SELECT version FROM o ORDER BY id));"
        " PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM o));",
        "TRUNCATE": "PERFORM prewarm_record_deleted('profile', ARRAY(SELECT id FROM core_profile ORDER BY id),"
        " ARRAY(SELECT version FROM core_profile ORDER BY id));"
        " PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM core_profile));",
    },
    "core_subscription": {
        "INSERT": _TOUCH_PROFILES.format("SELECT profile_id FROM n") + ";",
        "UPDATE": _TOUCH_PROFILES.format("SELECT profile_id FROM n UNION SELECT profile_id FROM o") + ";",
        "DELETE": _TOUCH_PROFILES.format("SELECT profile_id FROM o") + ";",
        "TRUNCATE": _TOUCH_PROFILES.format("SELECT profile_id FROM core_subscription") + ";",
    },
    "core_region": {
        # Class entries live under the region's code: a new region with an old code must
        # rebuild them, and a new time zone needs its fragments.
        "INSERT": "PERFORM prewarm_emit('region', ARRAY(SELECT id FROM n)); " + _NEW_TIMEZONE.format(old=""),
        "UPDATE": "PERFORM prewarm_emit('region', ARRAY(SELECT id FROM n));"
        " " + _TOUCH_PROFILES.format(
            "SELECT p.id FROM core_profile p JOIN n ON n.id = p.region_id JOIN o ON o.id = n.id"
            " WHERE n.code <> o.code OR n.timezone <> o.timezone"
        ) + "; " + _NEW_TIMEZONE.format(old=" AND n.timezone NOT IN (SELECT timezone FROM o)"),
        "DELETE": "PERFORM prewarm_emit('region', ARRAY(SELECT id FROM o));",
    },
    # Licences name their ISPs by code, so a renamed ISP changes what every class means.
    "core_isp": {
        "UPDATE": "IF EXISTS (SELECT 1 FROM n JOIN o ON o.id = n.id WHERE n.code <> o.code) THEN "
        + _TOUCH_ALL_REGIONS + " " + _TOUCH_PROFILES.format(
            "SELECT p.id FROM core_profile p JOIN n ON n.id = p.isp_id JOIN o ON o.id = n.id WHERE n.code <> o.code"
        ) + "; END IF;",
    },
    "core_plan": {
        "UPDATE": "IF EXISTS (SELECT 1 FROM n JOIN o ON o.id = n.id WHERE n.code <> o.code) THEN "
        + _TOUCH_ALL_REGIONS + " " + _TOUCH_PROFILES.format(
            "SELECT s.profile_id FROM core_subscription s JOIN n ON n.id = s.plan_id"
            " JOIN o ON o.id = n.id WHERE n.code <> o.code"
        ) + "; END IF;",
    },
    "core_channel": {
        "INSERT": "PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM n)); " + _TOUCH_ALL_REGIONS,
        "UPDATE": "PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM n));"
        " IF EXISTS (SELECT 1 FROM n JOIN o ON o.id = n.id WHERE n.code <> o.code OR n.number <> o.number) THEN "
        + _TOUCH_ALL_REGIONS + " END IF;",
        "DELETE": "PERFORM prewarm_record_deleted('channel', ARRAY(SELECT id FROM o ORDER BY id),"
        " ARRAY(SELECT epg_version FROM o ORDER BY id));"
        " PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM o)); " + _TOUCH_ALL_REGIONS,
        "TRUNCATE": "PERFORM prewarm_record_deleted('channel', ARRAY(SELECT id FROM core_channel ORDER BY id),"
        " ARRAY(SELECT epg_version FROM core_channel ORDER BY id));"
        " PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM core_channel)); " + _TOUCH_ALL_REGIONS,
    },
    # Which channels a plan opens: every region's classes.
    "core_channel_plans": dict.fromkeys(("INSERT", "UPDATE", "DELETE", "TRUNCATE"), _TOUCH_ALL_REGIONS),
    "core_licence": {
        "INSERT": "UPDATE core_region SET version = version WHERE id IN (SELECT region_id FROM n);",
        "UPDATE": "UPDATE core_region SET version = version"
        " WHERE id IN (SELECT region_id FROM n UNION SELECT region_id FROM o);",
        "DELETE": "UPDATE core_region SET version = version WHERE id IN (SELECT region_id FROM o);",
        "TRUNCATE": _TOUCH_ALL_REGIONS,
    },
    "core_licence_isps": {
        "INSERT": "UPDATE core_region SET version = version"
        " WHERE id IN (SELECT l.region_id FROM core_licence l JOIN n ON n.licence_id = l.id);",
        "UPDATE": "UPDATE core_region SET version = version WHERE id IN (SELECT l.region_id FROM core_licence l"
        " WHERE l.id IN (SELECT licence_id FROM n UNION SELECT licence_id FROM o));",
        "DELETE": "UPDATE core_region SET version = version"
        " WHERE id IN (SELECT l.region_id FROM core_licence l JOIN o ON o.licence_id = l.id);",
        "TRUNCATE": _TOUCH_ALL_REGIONS,
    },
    "core_programme": {
        "INSERT": "UPDATE core_channel SET epg_version = epg_version WHERE id IN (SELECT channel_id FROM n);",
        "UPDATE": "UPDATE core_channel SET epg_version = epg_version"
        " WHERE id IN (SELECT channel_id FROM n UNION SELECT channel_id FROM o);",
        "DELETE": "UPDATE core_channel SET epg_version = epg_version WHERE id IN (SELECT channel_id FROM o);",
        "TRUNCATE": "UPDATE core_channel SET epg_version = epg_version"
        " WHERE id IN (SELECT channel_id FROM core_programme);",
    },
}

VERSION_TRIGGERS = {
    "core_profile": "prewarm_bump_version",
    "core_region": "prewarm_bump_version",
    "core_channel": "prewarm_bump_epg_version",
}

# When each statement trigger fires and what it sees. TRUNCATE has no transition tables:
# its triggers run before the rows go, and read them.
_TIMING = {
    "INSERT": "AFTER INSERT {on} REFERENCING NEW TABLE AS n",
    "UPDATE": "AFTER UPDATE {on} REFERENCING OLD TABLE AS o NEW TABLE AS n",
    "DELETE": "AFTER DELETE {on} REFERENCING OLD TABLE AS o",
    "TRUNCATE": "BEFORE TRUNCATE {on}",
}


def trigger_name(table: str, event: str) -> str:
    return f"prewarm_{table}_{event.lower()}"


def install_sql() -> str:
    parts = [FUNCTIONS]
    for table, function in VERSION_TRIGGERS.items():
        parts.append(
            f"CREATE TRIGGER prewarm_{table}_version BEFORE INSERT OR UPDATE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {function}();"
        )
    for table, events in STATEMENT_TRIGGERS.items():
        for event, body in events.items():
            name = trigger_name(table, event)
            parts.append(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {body} RETURN NULL; END $$"
                f" LANGUAGE plpgsql;\n"
                f"CREATE TRIGGER {name} {_TIMING[event].format(on='ON ' + table)}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
            )
    return "\n".join(parts)


def uninstall_sql() -> str:
    parts = []
    for table, events in STATEMENT_TRIGGERS.items():
        for event in events:
            name = trigger_name(table, event)
            parts.append(f"DROP TRIGGER IF EXISTS {name} ON {table}; DROP FUNCTION IF EXISTS {name}();")
    for table in VERSION_TRIGGERS:
        parts.append(f"DROP TRIGGER IF EXISTS prewarm_{table}_version ON {table};")
    parts.append(
        "DROP FUNCTION IF EXISTS prewarm_emit(text, bigint[]); DROP FUNCTION IF EXISTS prewarm_bump_version();"
        " DROP FUNCTION IF EXISTS prewarm_bump_epg_version(); DROP FUNCTION IF EXISTS prewarm_touch_all_regions();"
        " DROP FUNCTION IF EXISTS prewarm_record_deleted(text, bigint[], bigint[]);"
        " DROP FUNCTION IF EXISTS prewarm_emit_all_channels();"
    )
    return "\n".join(parts)
