"""The suite's settings: the product's, in development mode, under a key prefix of its own.

`make test` gives the run a generated SECRET_KEY (tools/devstack.py); pytest started another
way gets one here (the settings take the built-in secret only with DEBUG, which the suite
leaves off). Key and prefix are exported, so the worker, relay and web processes a test
starts accept its tokens and use its keys; runs that share a Redis never see each other's.
"""
import os
import secrets

os.environ.setdefault("PREWARM_DEV", "1")
if not os.environ.get("SECRET_KEY"):
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
TEST_KEY_PREFIX = os.environ["PREWARM_KEY_PREFIX"] = f"pwtest{os.getpid()}"

from config.settings import *  # noqa: F403

PREWARM_KEY_PREFIX = TEST_KEY_PREFIX
# Tests read /readyz and /metrics right after changing what they report; the tests of the
# probes' short cache set it themselves.
PREWARM_PROBE_CACHE_SECONDS = 0.0
