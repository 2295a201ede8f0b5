"""WSGI entry point (served by granian in production): the hot lane in front of Django."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()  # also served alone: the hot lane's tests compare both

from api.hot_lane import HotLane  # noqa: E402  after the app loaded: it reads settings

application = HotLane(django_application)

import api.gc_tuning  # noqa: E402,F401  gc.freeze() and a higher gen-0 threshold, after the app loaded
