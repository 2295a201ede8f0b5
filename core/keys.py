"""The cache key schema: one function per key family, all under one prefix.

Every key is `<PREWARM_KEY_PREFIX>:<SCHEMA>:...`. Bump SCHEMA when a payload's shape
changes so old and new code never read each other's bytes. Keys read together share a
Redis Cluster hash tag (the part in braces).
"""
from django.conf import settings

SCHEMA = "v1"


def prefix() -> str:
    return f"{settings.PREWARM_KEY_PREFIX}:{SCHEMA}"


def profile_key(profile_id: int) -> str:
    """Hash: region, isp, tz, subscriptions, class, version, built_at, valid_until."""
    return f"{prefix()}:profile:{profile_id}"


def class_key(class_id: str) -> str:
    """Hash: what one entitlement class may watch, and why not the rest."""
    return f"{prefix()}:class:{class_id}"


def flight_key(entry_key: str) -> str:
    """String: the single-flight build lock beside an entry (same hash tag as the entry)."""
    return f"{entry_key}:flight"


def region_classes_key(region_code: str) -> str:
    """Set of class ids seen in a region: what a licence change there must rebuild."""
    return f"{prefix()}:classes:{region_code}"


def epg_fragment_key(tz: str, day: str, channel_id: int) -> str:
    """Hash: one channel's programmes for one local day, as JSON bytes.

    All fragments of a (timezone, day) share a hash tag: one EPG reads them together.
    """
    return f"{prefix()}:epg:{{{tz}|{day}}}:{channel_id}"


def epg_day_key(tz: str, day: str) -> str:
    """Names one (timezone, day) of fragments, in their slot; holds no value itself: a view
    building that day's missing fragments takes its single-flight lock from this name."""
    return f"{prefix()}:epg:{{{tz}|{day}}}"


def dirty_key(kind: str) -> str:
    """Hash id -> claim time: entries with a rebuild queued (coalescing)."""
    return f"{prefix()}:dirty:{kind}"


def edge_key(kind: str, at: int) -> str:
    """Set: ids whose rebuild at epoch second `at` is queued (workers.edges sends each once)."""
    return f"{prefix()}:edge:{kind}:{at}"


def edges_scanned_key() -> str:
    """String: epoch seconds up to which beat's schedule_due has queued every edge."""
    return f"{prefix()}:edges:scanned"


def warm_done_key(scope: str) -> str:
    """Set: the id spans a warm-up of this scope has finished (so it can resume)."""
    return f"{prefix()}:warm:done:{scope}"


def counters_key() -> str:
    """Hash: every declared counter (core.metrics), field `<name>:<label values>`."""
    return f"{prefix()}:metrics:counters"


def histogram_key(name: str) -> str:
    """Hash: one declared histogram's buckets, count and sum (core.metrics)."""
    return f"{prefix()}:metrics:histogram:{name}"


def histogram_samples_key(name: str) -> str:
    """List: the most recent raw observations of one histogram, newest first."""
    return f"{prefix()}:metrics:histogram:{name}:samples"
