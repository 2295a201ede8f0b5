"""The server's own limit: a constant JSON body from a bare WSGI callable (no Django), served
by granian with the Procfile's flags. BENCH_FLOOR_BYTES sets the body size (default 2 KB).
Imports nothing of Django, so bench.views uses its constant_json too."""
import os


def constant_json(size: int) -> bytes:
    """A valid JSON document of exactly `size` bytes (at least 10)."""
    size = max(size, 10)
    return b'{"pad":"' + b"x" * (size - 10) + b'"}'


BODY = constant_json(int(os.environ.get("BENCH_FLOOR_BYTES") or 2048))
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
