"""WSGI entry point (served by granian in production)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

import api.gc_tuning  # noqa: E402,F401  gc.freeze() and a higher gen-0 threshold, after the app loaded
