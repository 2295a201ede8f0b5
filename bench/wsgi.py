"""WSGI entry point of the bench server: the product's config.wsgi, loaded with bench.settings.

Importing config.wsgi (rather than building a second application here) keeps whatever the
product does at start-up, such as api.gc_tuning, in the measurement.
"""
import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

from config.wsgi import application  # noqa: F401
