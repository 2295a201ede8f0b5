"""The OpenAPI document, served as written (api/openapi.yaml)."""
from __future__ import annotations

from pathlib import Path

from django.http import HttpResponse

from .http import endpoint

PATH = Path(__file__).with_name("openapi.yaml")
_DOC = PATH.read_bytes()


@endpoint("GET")
def openapi(request):
    return HttpResponse(_DOC, content_type="application/yaml")
