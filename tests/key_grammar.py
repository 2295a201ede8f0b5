"""The cache key grammar, written out apart from core.keys: what every key we build or find
under our prefix must look like (README "Keys"). Tests hold the builders and Redis to it."""
import re

from django.conf import settings

ID = r"(?:0|[1-9][0-9]{0,18})"
CODE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
ZONE = r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*"
DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
KIND = r"[a-z]{1,16}"  # workers.events names three; the builders take any such word
METRIC = r"[a-z][a-z0-9_]*(?::[A-Za-z0-9_.+-]*)*"
FAMILIES = (
    rf"profile:{ID}", r"class:[0-9a-f]{16}", rf"classes:{CODE}", rf"epg:\{{{ZONE}\|{DAY}\}}(?::{ID})?",
    rf"dirty:\{{coalesce\}}:{KIND}", r"inflight:\{coalesce\}", r"inflight:\{coalesce\}:bell", rf"edge:{KIND}:{ID}",
    r"edges:pending", r"edges:scanned",
    r"metrics:counters", r"metrics:gauges", rf"metrics:histogram:{METRIC}(?::samples)?", r"verify:cursor", r"filled",
)
# Nothing a SCAN pattern or a hash tag reads specially outside the one tag; printable ASCII.
SAFE = re.compile(r"[A-Za-z0-9_.+/|:{}-]{1,256}")


def key_pattern() -> re.Pattern:
    prefix = re.escape(settings.PREWARM_KEY_PREFIX)
    return re.compile(rf"{prefix}:v1:(?:{'|'.join(FAMILIES)})(?::flight)?")


def is_key(key: str | bytes) -> bool:
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return bool(key_pattern().fullmatch(text)) and bool(SAFE.fullmatch(text)) and text.count("{") <= 1
