"""A stand-in for the broker's publish, for tests that make it fail or watch it."""
from workers import broker
from workers.app import app


def patch_send_task(monkeypatch, fake) -> None:
    """Route every task publish through `fake(name, args, kwargs, **options)`, called as
    `app.send_task` is: Celery's own (time edges, warm-up chunks) and the producers' single
    LPUSH (workers.broker.send_task, which workers.events uses)."""
    monkeypatch.setattr(app, "send_task", fake)
    monkeypatch.setattr(broker, "send_task",
                        lambda _app, name, args, kwargs, **options: fake(name, args, kwargs, **options))
