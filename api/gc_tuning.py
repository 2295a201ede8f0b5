"""Imported once the WSGI app is loaded: move it out of the GC's sight and collect less often.

gc.freeze() puts every object alive now (Django, the URLconf, settings, modules) in a
permanent generation the collector never scans again; a higher gen-0 threshold makes the
short-lived request objects trigger collections far less often. The seed article advised
it; measured here (`python -m bench api`) it gave nothing or cost up to ~10%, so it is off
unless PREWARM_GC_TUNING=1.
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
