"""Unit layer: pure code only. Any network connection (Postgres, Redis, a broker) fails the test."""
import socket

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/unit/" in item.nodeid:
            item.add_marker(pytest.mark.unit)


class NetworkInUnitTest(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkInUnitTest(f"a unit test tried to connect to {address}: move it to tests/integration")
        return real_connect(self, address, *args)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
