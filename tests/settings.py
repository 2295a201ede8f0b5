"""The suite's settings: the product's, in development mode, under a key prefix of its own.

Development mode lets every layer load without a SECRET_KEY (unit tests need none). The
prefix is fresh per run and exported, so runs that share a Redis never see each other's
keys and the worker, relay and web processes a test starts use the same one.
"""
import os

os.environ.setdefault("PREWARM_DEV", "1")
TEST_KEY_PREFIX = os.environ["PREWARM_KEY_PREFIX"] = f"pwtest{os.getpid()}"

from config.settings import *  # noqa: F403

PREWARM_KEY_PREFIX = TEST_KEY_PREFIX
