"""API views. At the foundation step only health and an authenticated placeholder exist."""
from functools import wraps

import orjson
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from core.models import Profile

from . import tokens
from .errors import error


def viewer(view):
    """Resolve the bearer token to request.token or answer 401 JSON."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            request.token = tokens.from_header(request.headers.get("Authorization"))
        except tokens.TokenError as exc:
            return error(401, "unauthorized", str(exc), WWW_Authenticate="Bearer")
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
def healthz(request):
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


@require_GET
@viewer
def me_profile(request):
    profile = Profile.objects.select_related("region", "isp").filter(pk=request.token.profile_id).first()
    if profile is None:
        return error(404, "profile_not_found", "this token's profile does not exist")
    body = orjson.dumps({"id": profile.pk, "region": profile.region.code, "isp": profile.isp.code})
    return HttpResponse(body, content_type="application/json")
