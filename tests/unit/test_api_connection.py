"""The views' Redis connection without a server: URL parsing, replies and errors, close on failure."""
import pytest
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from api.connection import CONNECT_TIMEOUT, SOCKET_TIMEOUT, RedisConn, RedisDown, ReplyError, connection_kwargs


def test_redis_urls():
    assert connection_kwargs("redis://127.0.0.1:6380/2")["host"] == "127.0.0.1"
    p = connection_kwargs("rediss://user:p%40ss@cache:6390/3")
    assert (p["port"], p["db"], p["username"], p["password"]) == (6390, 3, "user", "p@ss")
    assert p["connection_class"] is SSLConnection
    assert connection_kwargs("unix:///run/redis.sock?db=4")["path"] == "/run/redis.sock"
    with pytest.raises(ValueError):
        connection_kwargs("http://x")


def test_scheme_picks_the_connection_class():
    assert connection_kwargs("redis://cache")["connection_class"] is Connection
    assert connection_kwargs("rediss://cache")["connection_class"] is SSLConnection
    assert connection_kwargs("unix:///run/redis.sock")["connection_class"] is UnixDomainSocketConnection


def test_db_from_the_path_or_the_query_which_wins():
    assert connection_kwargs("redis://cache:6379/5")["db"] == 5
    assert connection_kwargs("redis://cache:6379?db=6")["db"] == 6
    assert connection_kwargs("redis://cache:6379/5?db=7")["db"] == 7
    assert connection_kwargs("unix:///run/redis.sock?db=4")["db"] == 4
    assert "db" not in connection_kwargs("redis://cache:6379")


def test_credentials_are_unquoted():
    p = connection_kwargs("redis://a%3Ab:p%2Fw%3Ard%40x@cache")
    assert (p["username"], p["password"], p["host"]) == ("a:b", "p/w:rd@x", "cache")
    p = connection_kwargs("redis://:only%20pw@cache")
    assert p["password"] == "only pw" and "username" not in p


def test_our_policy_overrides_the_url():
    p = connection_kwargs("redis://cache?socket_timeout=30&retry_on_timeout=yes&health_check_interval=5")
    assert (p["socket_timeout"], p["socket_connect_timeout"]) == (SOCKET_TIMEOUT, CONNECT_TIMEOUT)
    assert (p["retry_on_timeout"], p["health_check_interval"], p["protocol"]) == (False, 0, 2)
    assert p["driver_info"] is None


def test_the_connection_has_no_retry_and_the_hiredis_parser():
    from redis._parsers.hiredis import _HiredisParser

    conn = RedisConn("redis://cache:6390/3")._conn
    assert conn.retry.get_retries() == 0 and conn.retry_on_error == []
    assert isinstance(conn._parser, _HiredisParser)
    assert (conn.host, conn.port, conn.db, conn.protocol) == ("cache", 6390, 3, 2)


def test_the_tracking_connection_selects_no_db():
    assert RedisConn("redis://cache/3", select_db=False)._conn.db == 0


class FakeConnection:
    """Stands in for redis-py's Connection: scripted replies, records what was sent."""

    def __init__(self, replies=(), fail_send=None):
        self.replies = list(replies)
        self.fail_send = fail_send
        self.sent = []
        self.is_connected = True
        self.disconnects = 0
        self._sock = None

    def connect(self):
        self.is_connected = True

    def disconnect(self, *args, **kwargs):
        self.is_connected = False
        self.disconnects += 1

    def send_packed_command(self, packed, check_health=True):
        if self.fail_send is not None:
            raise self.fail_send
        self.sent.append(packed)

    def read_response(self):
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def conn_with(fake):
    conn = RedisConn("redis://cache")
    conn._conn = fake
    return conn


def test_one_write_per_call_and_an_error_reply_is_a_value_in_step():
    fake = FakeConnection([b"1", ResponseError("WRONGTYPE Operation against a key"), [b"a", b"b"]])
    conn = conn_with(fake)
    one, err, three = conn.call(("GET", "a"), ("HGETALL", "s"), ("MGET", "a", "b"))
    assert fake.sent == [[b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$7\r\nHGETALL\r\n$1\r\ns\r\n"
                          b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n"]]
    assert (one, three) == (b"1", [b"a", b"b"])
    assert isinstance(err, ReplyError) and "WRONGTYPE" in str(err)
    assert err.__traceback__ is None  # a value, holding no frames
    assert fake.is_connected and fake.disconnects == 0


@pytest.mark.parametrize("failure", [ConnectionError("Connection reset by peer"), TimeoutError("Timeout reading")])
def test_a_failed_read_closes_and_raises_redis_down(failure):
    fake = FakeConnection([b"ok", failure])
    conn = conn_with(fake)
    conn.tracking_epoch = 3
    with pytest.raises(RedisDown):
        conn.call(("GET", "a"), ("GET", "b"))
    assert not fake.is_connected and conn.tracking_epoch is None


def test_a_failed_write_closes_and_raises_redis_down():
    fake = FakeConnection(fail_send=ConnectionError("Broken pipe"))
    conn = conn_with(fake)
    with pytest.raises(RedisDown):
        conn.call(("GET", "a"))
    assert not fake.is_connected and fake.replies == []


def test_a_closed_connection_connects_again_only_on_the_next_call_and_forgets_its_tracking():
    fake = FakeConnection([b"PONG"])
    fake.is_connected = False
    conn = conn_with(fake)
    conn.tracking_epoch, conn.peer_closed = 4, True
    assert conn.call(("PING",)) == [b"PONG"]
    assert fake.is_connected and conn.tracking_epoch is None and not conn.peer_closed


def test_a_refused_connect_is_redis_down():
    class Refusing(FakeConnection):
        def connect(self):
            raise ConnectionError("Error 111 connecting to cache:6379. Connection refused.")

    fake = Refusing()
    fake.is_connected = False
    with pytest.raises(RedisDown, match="cannot connect"):
        conn_with(fake).call(("PING",))


def test_pending_never_connects():
    fake = FakeConnection()
    fake.is_connected = False
    with pytest.raises(RedisDown):
        conn_with(fake).pending()
    assert not fake.is_connected
