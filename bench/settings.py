"""Settings of the bench server: the product's, with the baseline routes of bench.urls added."""
from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE as _PRODUCT_MIDDLEWARE

ROOT_URLCONF = "bench.urls"
# The product's fast path, extended to the baseline routes (see bench.middleware).
MIDDLEWARE = ["bench.middleware.BenchFastPath" if m == "api.middleware.ApiFastPath" else m
              for m in _PRODUCT_MIDDLEWARE]
