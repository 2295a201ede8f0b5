"""Process and dependency health: /healthz (alive), /readyz (Postgres, Redis, broker).

/readyz is anonymous (load balancers probe it), so its checks are kept a moment per process
(api.brief) and an anonymous caller learns only ok/down per dependency: the reasons name
hosts, ports and roles, and need an ops token.
"""
from __future__ import annotations

import orjson
import psycopg
from django.conf import settings
from django.db import connection
from django.http import HttpResponse

from . import local_layer
from .auth import authenticate
from .brief import Brief
from .connection import RedisConn, RedisDown, ReplyError
from .http import JSON, endpoint

CHECK_TIMEOUT = 1  # seconds, per dependency


def check_postgres() -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["connect_timeout"] = CHECK_TIMEOUT
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("SELECT 1")


def check_redis() -> None:
    conn = RedisConn(settings.REDIS_URL)
    try:
        (reply,) = conn.call(("PING",))
        if isinstance(reply, ReplyError):
            raise RedisDown(str(reply))
    finally:
        conn.close()


def check_broker() -> None:
    from kombu import Connection

    options = {"socket_timeout": CHECK_TIMEOUT, "socket_connect_timeout": CHECK_TIMEOUT}
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT, transport_options=options) as conn:
        conn.ensure_connection(max_retries=0, interval_start=0)


CHECKS = {"postgres": check_postgres, "redis": check_redis, "broker": check_broker}


def run_checks() -> dict[str, str]:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"down: {type(exc).__name__}: {exc}"[:300]
    return results


@endpoint("GET")
def healthz(request):
    return HttpResponse(b'{"status":"ok"}', content_type=JSON)


_checks = Brief(run_checks)


@endpoint("GET")
def readyz(request):
    detail = "HTTP_AUTHORIZATION" in request.META
    if detail:
        token = authenticate(request, ops=True)
        if isinstance(token, HttpResponse):
            return token
    checks = _checks.get()
    tracker = local_layer.get()
    down = [name for name, state in checks.items() if state != "ok"]
    if not detail:
        checks = {name: "down" if name in down else "ok" for name in checks}
    local = "tracking" if tracker.alive else (f"off: {tracker.error}" if detail else "off")
    body = {"status": "degraded" if down else "ready", "checks": checks, "local_cache": local}
    if down:
        body["error"] = {"code": "dependency_down", "message": f"unreachable: {', '.join(down)}"}
    response = HttpResponse(orjson.dumps(body), status=503 if down else 200, content_type=JSON)
    response["Cache-Control"] = "no-store"
    return response
