"""API routes (api/openapi.yaml documents each; a test keeps them in step)."""
from django.urls import path

from . import health, index, metrics, ops, schema, views

ROUTES = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics.view),
    path("api/schema", schema.openapi),
    path("api/v1/me/profile", views.me_profile),
    path("api/v1/me/epg", views.me_epg),
    path("api/v1/me/playback/<str:channel_code>", views.me_playback),
    path("api/v1/me/channels", views.me_channels),
    path("api/v1/ops/warmups", ops.warmups),
    path("api/v1/ops/warmups/<str:job_id>", ops.warmup),
    path("api/v1/ops/events", ops.warmup_events),
    path("api/v1/ops/events/<str:event_id>", ops.warmup_event),
]
_index = index.view_for(ROUTES)
urlpatterns = [path("", _index), path("api/v1/", _index), *ROUTES]
