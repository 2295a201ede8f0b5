#!/usr/bin/env python
"""Django's command-line utility for Prewarm."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A configuration mistake (a missing SECRET_KEY, a bad variable): one line, not a traceback.
        sys.exit(f"manage.py: {exc}")
