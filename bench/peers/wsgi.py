"""WSGI entry point of every peer server: the settings module comes from DJANGO_SETTINGS_MODULE.

The prewarm peers load the product's config.wsgi (its start-up, api.gc_tuning included, is
part of what is measured); the others Django's plain WSGI application, as their team would.
"""
import os

if not os.environ.get("DJANGO_SETTINGS_MODULE", "").startswith("bench.peers.settings."):
    raise RuntimeError("set DJANGO_SETTINGS_MODULE=bench.peers.settings.<peer> (bench.peers.server_env)")

from django.conf import settings

if getattr(settings, "BENCH_PEER_PRODUCT", False):
    from config.wsgi import application
else:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
