# Prewarm application image: one image for web, worker, beat, relay and migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    # The source tree wins over the installed copy, so package data that the wheel
    # does not carry (templates, schedule files) is always there.
    PYTHONPATH=/app \
    PREWARM_STATIC_ROOT=/app/static

WORKDIR /app

COPY . /app
RUN pip install .

# config.settings refuses an empty key; collectstatic touches neither the database nor
# Redis, so a throwaway key that never reaches a running container is enough here.
RUN SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 --user-group prewarm
USER prewarm

EXPOSE 8000
CMD ["granian", "--interface", "wsgi", "--workers", "2", "--blocking-threads", "1", \
     "--host", "0.0.0.0", "--port", "8000", "config.wsgi:application"]
