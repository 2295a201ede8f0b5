"""The product's ApiFastPath, also serving the bench's baseline routes.

ApiFastPath takes its routes from api.urls and answers any other /api/ path with a 404, so
a baseline route under /api/bench/ would never reach its view. This subclass adds the
baseline routes to the same exact-path table the product routes live in: a floor or naive
request takes the very same steps as /api/v1/me/profile (one dict lookup, the view,
_secure's nosniff and Content-Length) and skips the same admin middleware. Any difference
in throughput is then the views' own work, not routing.
"""
from api.middleware import ApiFastPath


class BenchFastPath(ApiFastPath):
    def __init__(self, get_response):
        super().__init__(get_response)
        from . import urls

        for pattern in urls.baseline_patterns:
            self.exact["/" + str(pattern.pattern)] = pattern.callback
