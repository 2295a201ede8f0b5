"""api.brief: an answer computed once a moment per process, by one caller at a time."""
import threading
import time

from api.brief import Brief


def counting(seconds=0.0):
    calls = []

    def compute():
        calls.append(1)
        time.sleep(seconds)
        return len(calls)

    return Brief(compute), calls


def test_kept_for_the_configured_moment(settings):
    settings.PREWARM_PROBE_CACHE_SECONDS = 0.2
    brief, calls = counting()
    assert [brief.get() for _ in range(100)] == [1] * 100
    time.sleep(0.25)
    assert brief.get() == 2
    brief.clear()
    assert brief.get() == 3


def test_concurrent_callers_wait_for_one_computation(settings):
    settings.PREWARM_PROBE_CACHE_SECONDS = 5
    brief, calls = counting(seconds=0.1)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(brief.get())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [1] * 16 and len(calls) == 1


def test_zero_computes_every_time(settings):
    settings.PREWARM_PROBE_CACHE_SECONDS = 0
    brief, calls = counting()
    assert [brief.get() for _ in range(3)] == [1, 2, 3]
