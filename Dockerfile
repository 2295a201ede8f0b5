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
    # collectstatic below fills it; the web process (config.web) serves it at /static.
    PREWARM_STATIC_ROOT=/app/static \
    # config.web listens here (default 127.0.0.1: reachable only inside the container).
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app

COPY . /app
RUN pip install .

# config.settings refuses an empty key; collectstatic touches neither the database nor
# Redis, so a throwaway key that never reaches a running container is enough here.
RUN SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 --user-group prewarm
USER prewarm

EXPOSE 8000
# The web process; compose gives worker, beat, relay and migrate their own command.
CMD ["python", "-m", "config.web"]
