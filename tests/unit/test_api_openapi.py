"""api/openapi.yaml documents exactly the routes and methods the URLconf serves."""
import re

import yaml
from django.urls import URLPattern

from api import urls
from api.schema import PATH


def routes():
    out = {}
    for pattern in urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        out[route] = {m.lower() for m in pattern.callback.allowed_methods}
    return out


def test_every_route_and_method_is_documented_and_nothing_else():
    doc = yaml.safe_load(PATH.read_text())
    methods = {"get", "post", "put", "patch", "delete"}
    documented = {path: {m for m in ops if m in methods} for path, ops in doc["paths"].items()}
    assert documented == routes()


def test_secured_routes_document_auth_failures():
    doc = yaml.safe_load(PATH.read_text())
    by_route = {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)): p.callback for p in urls.urlpatterns}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            secured = by_route[path].auth is not None
            assert (op.get("security") != []) == secured, (path, method)
            if secured:
                assert {"401", "403"} <= set(op["responses"]), (path, method)


def test_path_parameters_match_the_route_converters():
    doc = yaml.safe_load(PATH.read_text())
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            params = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
            assert params == names, path
