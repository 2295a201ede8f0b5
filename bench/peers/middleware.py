"""The prewarm peers' front: the bench server's fast path plus the write route, and for
prewarm-cold a step that makes every viewer read a miss."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.http import HttpResponse

from api import auth
from bench.middleware import BenchFastPath
from core import keys
from core.builders import local_day_bounds
from core.redis_conn import client

from . import urls_prewarm

VIEWER_PREFIX = "/api/v1/me/"
EPG_PATH = "/api/v1/me/epg"

# One call: read the profile's class and zone, the class's channels, then UNLINK the profile,
# the class and the day's fragments of those channels. KEYS[1] the profile key; ARGV: the key
# prefix, the asked-for day ('' for today), '1' for an EPG request, then (zone, today) pairs.
# The keys besides KEYS[1] are derived inside the script: fine on one Redis (this is a bench
# server), not on a cluster.
_FORGET = """
local prefix, day, epg = ARGV[1], ARGV[2], ARGV[3] == '1'
local head = redis.call('HMGET', KEYS[1], 'class', 'tz')
local gone = redis.call('UNLINK', KEYS[1])
if not head[1] then return gone end
local class_key = prefix .. ':class:' .. head[1]
if epg then
  local data = redis.call('HGET', class_key, 'data')
  if data then
    local cls = cjson.decode(data)
    local tz = cls.tz
    if day == '' then
      for i = 4, #ARGV, 2 do if ARGV[i] == tz then day = ARGV[i + 1] end end
    end
    if day ~= '' then
      for _, cid in ipairs(cls.allowed_ids) do
        gone = gone + redis.call('UNLINK', string.format('%s:epg:{%s|%s}:%d', prefix, tz, day, cid))
      end
    end
  end
end
return gone + redis.call('UNLINK', class_key)
"""


class PeerFastPath(BenchFastPath):
    """BenchFastPath with POST /api/bench/write in the same exact-path table."""

    def __init__(self, get_response):
        super().__init__(get_response)
        for pattern in urls_prewarm.peer_patterns:
            self.exact["/" + str(pattern.pattern)] = pattern.callback


class ColdFastPath(PeerFastPath):
    """prewarm-cold: before a viewer route runs, delete what it would read, so it misses.

    For /api/v1/me/* with a valid viewer token: the viewer's profile entry, its class entry
    and, for the EPG, the asked-for day's fragments of the class's channels (today in the
    class's zone when no date is given), in ONE extra Redis round trip (a Lua script that reads
    the profile's class and the class's channels, then UNLINKs them). The product's view then
    misses each entry and builds it through its single-flight path (Postgres, orjson, the
    versioned write, a second read). With the in-process layer off (settings.prewarm_cold)
    nothing is served from memory either. Not a miss: the first request of a viewer whose
    profile entry was never built may find its class (built for another viewer of the class)
    and the fragments in Redis, since the script learns the class from the profile entry; nor
    the day's fragments of a time zone added after the process started (today's date per zone
    is computed here from the zones in use at the first request).
    """

    def __init__(self, get_response):
        super().__init__(get_response)
        self.forget = client().register_script(_FORGET)
        self.days: dict[str, tuple[float, str]] = {}  # zone -> (next local midnight, today)

    def _todays(self, now: float) -> list[str]:
        from core import selectors

        if not self.days:
            self.days = dict.fromkeys(selectors.timezones(), (0.0, ""))  # once per process
        out = []
        for tz, (until, today) in list(self.days.items()):
            if until <= now:
                local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz)).date()
                until, today = local_day_bounds(local, tz)[1].timestamp(), local.isoformat()
                self.days[tz] = (until, today)
            out += [tz, today]
        return out

    def __call__(self, request):
        path = request.path_info
        if path.startswith(VIEWER_PREFIX):
            token = auth.authenticate(request, ops=False)  # memoised: the view's own check is a dict hit
            if not isinstance(token, HttpResponse):
                is_epg = path == EPG_PATH
                day = (request.GET.get("date") or "") if is_epg and request.META.get("QUERY_STRING") else ""
                todays = self._todays(time.time()) if is_epg and not day else []
                self.forget(keys=[keys.profile_key(token.profile_id)],
                            args=[keys.prefix(), day, "1" if is_epg else "0", *todays])
        return super().__call__(request)
