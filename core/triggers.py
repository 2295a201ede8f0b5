"""SQL for the triggers that feed the outbox: every change to a table behind the cache, made by
the ORM, QuerySet.update, bulk_create, raw SQL or another service, writes an outbox row in the
same transaction and NOTIFYs the relay.

Dependent rows "touch" their parent (UPDATE ... SET version = version) and the parent's
BEFORE trigger bumps its version, so one event kind per cached family is enough:
subscriptions -> profile, programmes -> channel, licences and packages -> region.
Statement-level triggers with transition tables keep a 100k-row UPDATE to one outbox row.
"""

NOTIFY_CHANNEL = "prewarm_outbox"

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION prewarm_emit(p_kind text, p_ids bigint[]) RETURNS void AS $$
BEGIN
  IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN RETURN; END IF;
  INSERT INTO prewarm_outbox (kind, ids, created_at) VALUES (p_kind, p_ids, clock_timestamp());
  PERFORM pg_notify('{NOTIFY_CHANNEL}', p_kind);
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION prewarm_bump_version() RETURNS trigger AS $$
BEGIN NEW.version := OLD.version + 1; RETURN NEW; END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION prewarm_bump_epg_version() RETURNS trigger AS $$
BEGIN NEW.epg_version := OLD.epg_version + 1; RETURN NEW; END $$ LANGUAGE plpgsql;

-- Touch every region (in id order, so concurrent callers cannot deadlock).
CREATE OR REPLACE FUNCTION prewarm_touch_all_regions() RETURNS void AS $$
BEGIN
  UPDATE core_region SET version = version
   WHERE id IN (SELECT id FROM core_region ORDER BY id FOR UPDATE);
END $$ LANGUAGE plpgsql;
"""

# (table, function name, body per event). Bodies see transition tables `n` (new) and `o` (old).
STATEMENT_TRIGGERS = {
    "core_profile": {
        "INSERT": "PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM n));",
        "UPDATE": "PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM n));",
        "DELETE": "PERFORM prewarm_emit('profile', ARRAY(SELECT id FROM o));",
    },
    "core_subscription": {
        "INSERT": "UPDATE core_profile SET version = version WHERE id IN (SELECT profile_id FROM n);",
        "UPDATE": "UPDATE core_profile SET version = version"
        " WHERE id IN (SELECT profile_id FROM n UNION SELECT profile_id FROM o);",
        "DELETE": "UPDATE core_profile SET version = version WHERE id IN (SELECT profile_id FROM o);",
    },
    "core_region": {
        "UPDATE": "PERFORM prewarm_emit('region', ARRAY(SELECT id FROM n));"
        # A new code or time zone is written into every profile of the region.
        " PERFORM prewarm_emit('profile', ARRAY(SELECT p.id FROM core_profile p"
        " JOIN n ON n.id = p.region_id JOIN o ON o.id = n.id"
        " WHERE n.code <> o.code OR n.timezone <> o.timezone));",
    },
    "core_isp": {
        "UPDATE": "PERFORM prewarm_emit('profile', ARRAY(SELECT p.id FROM core_profile p"
        " JOIN n ON n.id = p.isp_id JOIN o ON o.id = n.id WHERE n.code <> o.code));",
    },
    "core_plan": {
        "UPDATE": "IF EXISTS (SELECT 1 FROM n JOIN o ON o.id = n.id WHERE n.code <> o.code) THEN"
        " PERFORM prewarm_touch_all_regions();"
        " PERFORM prewarm_emit('profile', ARRAY(SELECT DISTINCT s.profile_id FROM core_subscription s"
        " JOIN n ON n.id = s.plan_id)); END IF;",
    },
    "core_channel": {
        "INSERT": "PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM n)); PERFORM prewarm_touch_all_regions();",
        "UPDATE": "PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM n));"
        " IF EXISTS (SELECT 1 FROM n JOIN o ON o.id = n.id WHERE n.code <> o.code OR n.number <> o.number) THEN"
        " PERFORM prewarm_touch_all_regions(); END IF;",
        "DELETE": "PERFORM prewarm_emit('channel', ARRAY(SELECT id FROM o)); PERFORM prewarm_touch_all_regions();",
    },
    "core_channel_plans": {
        "INSERT": "PERFORM prewarm_touch_all_regions();",
        "DELETE": "PERFORM prewarm_touch_all_regions();",
    },
    "core_licence": {
        "INSERT": "UPDATE core_region SET version = version WHERE id IN (SELECT region_id FROM n);",
        "UPDATE": "UPDATE core_region SET version = version"
        " WHERE id IN (SELECT region_id FROM n UNION SELECT region_id FROM o);",
        "DELETE": "UPDATE core_region SET version = version WHERE id IN (SELECT region_id FROM o);",
    },
    "core_licence_isps": {
        "INSERT": "UPDATE core_region SET version = version"
        " WHERE id IN (SELECT l.region_id FROM core_licence l JOIN n ON n.licence_id = l.id);",
        "DELETE": "UPDATE core_region SET version = version"
        " WHERE id IN (SELECT l.region_id FROM core_licence l JOIN o ON o.licence_id = l.id);",
    },
    "core_programme": {
        "INSERT": "UPDATE core_channel SET epg_version = epg_version WHERE id IN (SELECT channel_id FROM n);",
        "UPDATE": "UPDATE core_channel SET epg_version = epg_version"
        " WHERE id IN (SELECT channel_id FROM n UNION SELECT channel_id FROM o);",
        "DELETE": "UPDATE core_channel SET epg_version = epg_version WHERE id IN (SELECT channel_id FROM o);",
    },
}

VERSION_TRIGGERS = {
    "core_profile": "prewarm_bump_version",
    "core_region": "prewarm_bump_version",
    "core_channel": "prewarm_bump_epg_version",
}

_REFERENCING = {
    "INSERT": "REFERENCING NEW TABLE AS n",
    "UPDATE": "REFERENCING OLD TABLE AS o NEW TABLE AS n",
    "DELETE": "REFERENCING OLD TABLE AS o",
}


def trigger_name(table: str, event: str) -> str:
    return f"prewarm_{table}_{event.lower()}"


def install_sql() -> str:
    parts = [FUNCTIONS]
    for table, function in VERSION_TRIGGERS.items():
        parts.append(
            f"CREATE TRIGGER prewarm_{table}_version BEFORE UPDATE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {function}();"
        )
    for table, events in STATEMENT_TRIGGERS.items():
        for event, body in events.items():
            name = trigger_name(table, event)
            parts.append(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {body} RETURN NULL; END $$"
                f" LANGUAGE plpgsql;\n"
                f"CREATE TRIGGER {name} AFTER {event} ON {table} {_REFERENCING[event]}"
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
    )
    return "\n".join(parts)
