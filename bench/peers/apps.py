"""The django-redis peer's app: its invalidation receivers, connected when Django is ready."""
from django.apps import AppConfig


class DjangoRedisPeerConfig(AppConfig):
    name = "bench.peers"
    label = "bench_peers_djredis"
    verbose_name = "bench peer: django-redis"

    def ready(self):
        from . import djredis

        djredis.connect()
