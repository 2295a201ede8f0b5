"""Fill the database with realistic, deterministic demo data; bulk rows go through COPY."""
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from core import demo_data
from core.models import Channel, Isp, Licence, Plan, Profile, Programme, Region, Subscription

# Serialises concurrent seeders (an arbitrary constant for pg_advisory_xact_lock).
SEED_LOCK_KEY = 0x5EED_DE40
MAX_DAYS = 366
GUIDE_BLOCK_CHANNELS = 50
# Memory for rebuilding the dropped indexes; 64MB (the default) was 40% slower at 1M profiles.
INDEX_BUILD_MEMORY = "256MB"

LicenceIsp = Licence.isps.through
ChannelPlan = Channel.plans.through
DOMAIN_MODELS = [Region, Isp, Plan, Channel, ChannelPlan, Licence, LicenceIsp, Profile, Subscription, Programme]
BULK_MODELS = [Profile, Subscription, Programme]


class Command(BaseCommand):
    help = "Seed realistic demo data: regions, ISPs, plans, channels, licences, programmes, profiles, subscriptions."

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, required=True, help="number of viewer profiles")
        parser.add_argument("--channels", type=int, default=150, help="number of channels (default 150)")
        parser.add_argument("--days", type=int, default=2, help="guide from yesterday to today+DAYS (default 2)")
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument("--reset", action="store_true", help="truncate the domain tables and seed again")
        parser.add_argument(
            "--now", default=None, help="ISO-8601 instant the data is built around (default: the current time)"
        )

    def handle(self, *args, profiles, channels, days, seed, reset, now, **options):
        if profiles < 0:
            raise CommandError(f"--profiles must be 0 or more, got {profiles}")
        if channels < 1:
            raise CommandError(f"--channels must be at least 1, got {channels}")
        if not 0 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 0 and {MAX_DAYS}, got {days}")
        now = parse_now(now)
        started = time.perf_counter()

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEED_LOCK_KEY])
            # First, so that TRUNCATE's triggers are skipped as well as the inserts'.
            replica = skip_triggers(cursor)
            if reset:
                truncate_domain(cursor)
            elif (existing := seeded_profiles(cursor)) is not None:
                self.stdout.write(f"already seeded: {existing:,} profiles; use --reset to re-create")
                return
            triggers = user_triggers(cursor)
            if triggers and not replica:
                self.stderr.write(f"session_replication_role is not settable: {triggers} trigger(s) will fire")
            # Measured at 1M profiles: keeping the indexes during COPY took 13 s, rebuilding them after 6 s.
            indexes = drop_secondary_indexes(cursor)
            counts = self.seed(cursor, profiles=profiles, channels=channels, days=days, seed=seed, now=now)
            t0 = time.perf_counter()
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
            for ddl in indexes:
                cursor.execute(ddl)
            self.stdout.write(f"  indexes: {len(indexes)} rebuilt ({time.perf_counter() - t0:.1f} s)")
            cursor.execute("; ".join(connection.ops.sequence_reset_sql(no_style(), DOMAIN_MODELS)))
        with connection.cursor() as cursor:
            # Fresh planner statistics, so the first warm-up does not plan against empty tables.
            cursor.execute("ANALYZE " + ", ".join(m._meta.db_table for m in DOMAIN_MODELS))

        elapsed = time.perf_counter() - started
        bulk = counts["profiles"] + counts["subscriptions"] + counts["programmes"]
        self.stdout.write(
            f"seeded {bulk:,} rows in {elapsed:.1f} s ({bulk / elapsed:,.0f} rows/s): "
            + ", ".join(f"{n:,} {name}" for name, n in counts.items())
        )
        if reset:
            self._forget_old_entries()
        if triggers and replica:
            self.stdout.write(f"{triggers} cache-feeding trigger(s) were skipped: run `manage.py warm --all` next")
        else:
            self.stdout.write("the cache is cold: run `manage.py warm --all` for a full warm-up")

    def _forget_old_entries(self):
        """The old data set's entries describe rows that are gone, and their versions (above the
        new rows') and tombstones would refuse every write of the warm-up that follows."""
        import redis

        from core import keys, redis_conn

        try:
            gone = redis_conn.unlink_prefix(keys.prefix())
        except redis.RedisError as exc:
            raise CommandError(
                f"seeded, but the old cache entries could not be dropped ({exc}); with Redis up, run"
                " `manage.py seed_demo --reset` again"
            ) from None
        self.stdout.write(f"  cache: {gone:,} entries of the old data set dropped")

    def seed(self, cursor, *, profiles, channels, days, seed, now):
        channel_specs = demo_data.make_channels(seed, channels)
        licence_specs = demo_data.make_licences(seed, channel_specs, now)
        write_reference_data(channel_specs, licence_specs)
        counts = {"regions": len(demo_data.REGIONS), "isps": len(demo_data.ISPS), "plans": len(demo_data.PLANS)}
        counts |= {"channels": len(channel_specs), "licences": len(licence_specs)}

        pg = cursor.cursor  # the psycopg cursor under Django's wrapper, for COPY
        population = demo_data.Population(seed=seed, count=profiles, now=now)
        counts["profiles"] = self.copy_blocks(
            pg,
            "COPY core_profile (id, region_id, isp_id) FROM STDIN",
            population.profile_blocks(),
            label="profiles",
            unit="profiles",
            total=profiles,
            per_block=population.chunk,
        )
        counts["subscriptions"] = self.copy_blocks(
            pg,
            "COPY core_subscription (id, profile_id, plan_id, starts_at, expires_at) FROM STDIN",
            population.subscription_blocks(),
            label="subscriptions",
            unit="profiles",
            total=profiles,
            per_block=population.chunk,
        )
        start, end = demo_data.guide_window(now, days)
        counts["programmes"] = self.copy_blocks(
            pg,
            "COPY core_programme (id, channel_id, starts_at, ends_at, title, synopsis, genre, age_rating) FROM STDIN",
            guide_blocks(seed, channel_specs, start, end, GUIDE_BLOCK_CHANNELS),
            label="programmes",
            unit="channels",
            total=len(channel_specs),
            per_block=GUIDE_BLOCK_CHANNELS,
        )
        return counts

    def copy_blocks(self, pg, statement, blocks, *, label, unit, total, per_block):
        """COPY (rows, text) blocks that each cover `per_block` units; a progress line every quarter."""
        rows = done = 0
        step = max(1, total // 4)
        next_report = step
        t0 = time.perf_counter()
        with pg.copy(statement) as copy:
            for n, text in blocks:
                copy.write(text)
                rows += n
                done = min(total, done + per_block)
                if done >= next_report or done == total:
                    elapsed = time.perf_counter() - t0
                    self.stdout.write(f"  {label}: {done:,}/{total:,} {unit} ({rows:,} rows, {elapsed:.1f} s)")
                    next_report = done + step
        return rows


def parse_now(raw):
    if raw is None:
        return timezone.now().replace(microsecond=0)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--now must be an ISO-8601 date and time, got {raw!r}") from None
    return value if timezone.is_aware(value) else timezone.make_aware(value, timezone.utc)


def skip_triggers(cursor):
    """Skip ordinary triggers (the outbox ones) and FK checks for this transaction, if allowed."""
    try:
        with transaction.atomic():  # a savepoint: a refused SET must not abort the seed
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        return False
    return True


def truncate_domain(cursor):
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in DOMAIN_MODELS)
    cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def seeded_profiles(cursor):
    """The number of profiles when any domain data exists (a new seed would collide with it), else None."""
    cursor.execute(
        "SELECT (SELECT count(*) FROM core_profile),"
        " EXISTS (SELECT 1 FROM core_region) OR EXISTS (SELECT 1 FROM core_channel)"
    )
    profiles, reference = cursor.fetchone()
    return profiles if profiles or reference else None


def user_triggers(cursor):
    tables = [m._meta.db_table for m in DOMAIN_MODELS]
    cursor.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY(%s::regclass[])", [tables])
    return cursor.fetchone()[0]


def drop_secondary_indexes(cursor):
    """Drop the bulk tables' plain indexes (not those behind constraints); return their DDL to rebuild.

    Inside the transaction, so a failed seed rolls the drop back too.
    """
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary AND NOT i.indisunique"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [[m._meta.db_table for m in BULK_MODELS]],
    )
    found = cursor.fetchall()
    for name, _ in found:
        cursor.execute(f"DROP INDEX {name}")  # regclass text comes back quoted where needed
    return [ddl for _, ddl in found]


def write_reference_data(channel_specs, licence_specs):
    # Explicit ids everywhere, so the same seed gives the same rows on any database.
    Region.objects.bulk_create(
        Region(id=r.id, code=r.code, name=r.name, timezone=r.timezone) for r in demo_data.REGIONS
    )
    Isp.objects.bulk_create(Isp(id=i.id, code=i.code, name=i.name) for i in demo_data.ISPS)
    Plan.objects.bulk_create(Plan(id=p.id, code=p.code, name=p.name) for p in demo_data.PLANS)
    Channel.objects.bulk_create(Channel(id=c.id, code=c.code, name=c.name, number=c.number) for c in channel_specs)
    channel_plans = [(c.id, plan_id) for c in channel_specs for plan_id in c.plan_ids]
    ChannelPlan.objects.bulk_create(
        ChannelPlan(id=n, channel_id=c, plan_id=p) for n, (c, p) in enumerate(channel_plans, start=1)
    )
    Licence.objects.bulk_create(
        Licence(
            id=lic.id,
            channel_id=lic.channel_id,
            region_id=lic.region_id,
            isp_mode=lic.isp_mode,
            valid_from=lic.valid_from,
            valid_until=lic.valid_until,
        )
        for lic in licence_specs
    )
    licence_isps = [(lic.id, isp_id) for lic in licence_specs for isp_id in lic.isp_ids]
    LicenceIsp.objects.bulk_create(
        LicenceIsp(id=n, licence_id=lic, isp_id=isp) for n, (lic, isp) in enumerate(licence_isps, start=1)
    )


def guide_blocks(seed, channel_specs, start, end, per_block):
    """(rows, text) blocks of programmes, `per_block` channels at a time."""
    next_id = 1
    for i in range(0, len(channel_specs), per_block):
        lines = []
        for channel in channel_specs[i : i + per_block]:
            for programme in demo_data.channel_guide(seed, channel, start, end):
                lines.append(demo_data.programme_line(next_id, programme))
                next_id += 1
        yield len(lines), "".join(lines)
