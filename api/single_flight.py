"""Build a missing cache entry once across processes: a short Redis lock, waiters poll."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from core.keys import flight_key
from core.redis_conn import client

# The lock outlives any sane build; a crashed builder only delays others this long.
LOCK_TTL_MS = 10_000
# Waiters poll the lock this often and give up waiting (and build themselves) after WAIT.
POLL_SECONDS = 0.005
WAIT_SECONDS = 3.0

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def run(entry_key: str, build: Callable[[], object], *, wait: float | None = None) -> bool:
    """Run `build` unless another caller holds the lock; then wait for it to finish.

    Returns True when this call built. Redis errors propagate (the caller degrades).
    """
    r = client()
    lock = flight_key(entry_key)
    token = uuid.uuid4().hex
    if r.set(lock, token, nx=True, px=LOCK_TTL_MS):
        try:
            build()
        finally:
            r.eval(_RELEASE, 1, lock, token)
        return True
    deadline = time.monotonic() + (WAIT_SECONDS if wait is None else wait)
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        if not r.exists(lock):
            return False
    build()  # the holder is slow or gone: do not keep the viewer waiting any longer
    return True
