"""Imported once the WSGI app is loaded: move it out of the GC's sight and collect less often.

gc.freeze() puts every object alive now (Django, the URLconf, settings, modules) in a
permanent generation the collector never scans again; a higher gen-0 threshold makes the
short-lived request objects trigger collections far less often. The seed article advised
it; measured here (`python -m bench api`) it gave nothing or cost up to ~10%, so it is off
unless PREWARM_GC_TUNING=1.

Measured again on the hot lane (#14), which now answers the warm reads: its warm answer
frees everything it allocates by reference counting, so the collector never runs (no
collection in 30,000 answers, tests/integration/test_api_hot_lane.py checks the count does
not grow) and in process an answer cost the same 3.38 us with and without the tuning,
8 alternating batches each. `bench api`'s on/off pairs on the shared 2-core machine swung
-38% to +64% between endpoints, noise both ways. Nothing to win: it stays off.
"""
import gc
import os

GEN0_THRESHOLD = 50_000


def tune() -> None:
    if os.environ.get("PREWARM_GC_TUNING", "0") != "1":
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


tune()
