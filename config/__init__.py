"""The Django project: settings, URLs and the WSGI entry point, wiring the apps together."""
