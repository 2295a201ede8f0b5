"""URLconf of the peers that are not the product: their viewer routes, the floors, /healthz, the write."""
from importlib import import_module

from django.conf import settings
from django.urls import path

from api import health
from bench import views as baselines

from . import write

views = import_module(getattr(settings, "BENCH_PEER_VIEWS", "bench.peers.naive"))

urlpatterns = [
    path("healthz", health.healthz),
    path("api/bench/floor-2k", baselines.floor_2k),
    path("api/bench/floor-epg", baselines.floor_epg),
    path("api/bench/write", write.write),
    path("api/v1/me/epg", views.me_epg),
    path("api/v1/me/playback/<str:channel_code>", views.me_playback),
]

handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"
