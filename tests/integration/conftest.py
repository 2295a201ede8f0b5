"""Integration layer: real Postgres, Redis and broker in this process (fixtures: ../conftest.py)."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
