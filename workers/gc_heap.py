"""The Python heap of a long-running process: what it built at start, left out of collections.

    process start (imports, Faust, Ray, the model) ──freeze_heap()──► gc.collect(), then
        gc.freeze(): every object alive now moves to the permanent generation, which no
        later collection walks

CPython's full (generation 2) collection walks every tracked container: after start, all
that torch, transformers, Ray, Faust and pydantic built. Under load each one paused the
worker's event loop for 126-272 ms, every few to few dozen seconds, and every event in
flight waited it out (BENCHMARKS.md, session 25). Frozen objects are still freed by
reference counting; only a reference cycle among them that dies later is never collected.
Freeze once, when start-up is over; `streams.worker` and `workers.actors` do.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_heap(owner: str) -> int:
    """Collect what start-up left as garbage, then freeze every object alive; returns
    how many objects are frozen (in all, with earlier calls')."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "%s: %d objects frozen out of garbage collection (%.0f ms)",
        owner,
        frozen,
        1000 * (time.perf_counter() - started),
    )
    return frozen
