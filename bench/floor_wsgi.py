"""The server's own limit: a constant JSON body from a bare WSGI callable (no Django), served
by granian with the Procfile's flags. BENCH_FLOOR_BYTES sets the body size (default 2 KB)."""
import os

from .views import constant_json

BODY = constant_json(int(os.environ.get("BENCH_FLOOR_BYTES") or 2048))
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
