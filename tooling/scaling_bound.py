"""What a measured CPU split says about more workers, by Amdahl's law.

An event's path crosses per-worker processes (the Faust worker, its Recommender actor)
and one process every worker shares (the broker: one embedded Tansu here). The cluster's
other actors are off that path: the trainer learns from a bounded sample stream and falls
behind rather than holding events up; the catalog writer and the encoder work per item
and per replica poll, not per event. So the serial fraction of the event path is the
broker's share of its CPU per event, and N workers serve at most
``1 / (serial + (1 - serial) / N)`` times what one does, before the broker is scaled out.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Processes on the event path that every worker shares (one per cluster).
SERIAL = ("broker",)
#: Processes on the event path that each worker or node has its own of.
PER_WORKER = ("worker", "Recommender")


def serial_fraction(cpu_ms_per_event: Mapping[str, float]) -> float:
    """The shared processes' share of the event path's CPU per event."""
    missing = [name for name in (*SERIAL, *PER_WORKER) if name not in cpu_ms_per_event]
    if missing:
        raise ValueError(f"the CPU split lacks {missing}: {dict(cpu_ms_per_event)}")
    serial = sum(cpu_ms_per_event[name] for name in SERIAL)
    path = serial + sum(cpu_ms_per_event[name] for name in PER_WORKER)
    if path <= 0:
        raise ValueError(f"no CPU on the event path: {dict(cpu_ms_per_event)}")
    return serial / path


def amdahl(serial: float, workers: int) -> float:
    """The most ``workers`` can serve, as a multiple of one, when ``serial`` of the work
    cannot be shared out."""
    if not 0.0 <= serial <= 1.0 or workers < 1:
        raise ValueError(f"need 0 <= serial <= 1 and workers >= 1: {serial} {workers}")
    return 1.0 / (serial + (1.0 - serial) / workers)
