"""Naming a Redis Cluster cache, and routing a command to its node (pure parts)."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from api.cluster import moved, node_url
from api.connection import ReplyError
from config.settings import redis_cache_url
from core.redis_conn import command_key


@pytest.mark.parametrize("url, flag, expected", [
    ("redis://h:7000/0", False, ("redis://h:7000/0", False)),
    ("redis+cluster://h:7000", False, ("redis://h:7000", True)),
    ("rediss+cluster://:pw@h:7000/0", False, ("rediss://:pw@h:7000/0", True)),
    ("redis://h:7000", True, ("redis://h:7000", True)),
])
def test_a_cluster_is_named_by_the_url_scheme_or_the_flag(url, flag, expected):
    assert redis_cache_url(url, flag) == expected


def test_a_cluster_has_database_0_only():
    with pytest.raises(ImproperlyConfigured, match="database 0 only"):
        redis_cache_url("redis+cluster://h:7000/3", False)


def test_a_node_url_keeps_credentials_and_options():
    assert node_url("rediss://u:pw@seed:7000/0?ssl_cert_reqs=none", "10.0.0.2", 7001) == \
        "rediss://u:pw@10.0.0.2:7001?ssl_cert_reqs=none"
    assert node_url("redis://seed:7000/0", "10.0.0.2", 7001) == "redis://10.0.0.2:7001"


def test_the_key_that_routes_a_command():
    assert command_key(("HSET", "k", "f", "v")) == "k"
    assert command_key(("EVALSHA", "sha", 2, "a", "b", 1)) == "a"
    assert command_key(("EVAL", "return 1", 0)) is None
    assert command_key(("PING",)) is None


def test_moved_and_ask_replies_send_a_read_elsewhere():
    assert moved([b"x", ReplyError("MOVED 3999 127.0.0.1:7001")])
    assert moved([ReplyError("ASK 3999 127.0.0.1:7001")])
    assert not moved([b"x", ReplyError("WRONGTYPE")])
