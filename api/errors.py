"""JSON error responses: {"error": {"code": ..., "message": ...}}."""
import orjson
from django.http import HttpResponse


def error(status: int, code: str, message: str, **headers) -> HttpResponse:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    response = HttpResponse(body, status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def not_found(request, exception=None):
    return error(404, "not_found", "no such resource")


def server_error(request):
    return error(500, "internal_error", "the server failed to answer; this is logged")


def bad_request(request, exception=None):
    return error(400, "bad_request", "the request could not be understood")


def permission_denied(request, exception=None):
    return error(403, "forbidden", "not allowed")
