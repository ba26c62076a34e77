"""Two measures `streamrec bench` takes beside throughput and latency.

* **New-item freshness**: how soon an item is recommendable after its record is
  produced. A twin of a catalog item (same text, so the same frozen vector) is produced
  under a new id, then an event on the original for a new user every 50 ms until a
  recommendation lists the twin (the original is excluded as seen; its twin is its
  nearest neighbour). Reported: the twin's produce time → that recommendation's
  produce time.
* **Memory**: resident set size of the worker process and of each Ray actor process it
  started (its descendants titled ``ray::<Class>``), read from /proc.
* **CPU over time**: `CpuSampler` reads a few processes' CPU seconds every 0.1 s in a
  thread of its own (the trainer's, for `tooling.round_split`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from tooling.consume import TopicReader
from tooling.datasets import Record
from tooling.local import LocalStack
from tooling.processes import actor_class, cpu_seconds, descendants, rss_mb
from tooling.produce import encode_record, kafka_producer


def new_item_freshness(stack: LocalStack, original: Record, timeout: float = 60.0) -> float:
    """Seconds from producing a twin of ``original`` until a recommendation lists it."""
    twin_id = f"bench-twin-{uuid.uuid4().hex[:8]}"
    twin = {**original, "item_id": twin_id}
    topics = stack.kafka.topics
    producer = kafka_producer(stack.kafka)
    with TopicReader(stack.kafka, [topics.recommendations]) as reader:
        reader.consumer.seek_to_end()  # only what comes after the twin
        produced = time.time()
        producer.send(topics.items, key=twin_id.encode(), value=encode_record(twin))
        producer.flush()
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n += 1
            user = f"bench-fresh-{twin_id}-{n}"
            probe = {
                "event_id": f"{user}-e",
                "user_id": user,
                "item_id": original["item_id"],
                "ts": time.time(),
                "scenario": original.get("scenario", "default"),
            }
            producer.send(topics.events, key=user.encode(), value=encode_record(probe))
            producer.flush()
            for rec in reader.poll(timeout=0.05):
                if any(i["item_id"] == twin_id for i in rec.value.get("items", [])):
                    producer.close()
                    return float(rec.value["ts"]) - produced
    producer.close()
    raise TimeoutError(f"the twin item was not recommended within {timeout} s")


def cpu_by_process(
    workers: Sequence[int], broker: int | None, ray_roots: Sequence[int] = ()
) -> dict[str, float]:
    """{"worker" | actor class | "broker": CPU seconds used so far}: the workers summed,
    the actors of each class summed, found under the workers (their local Ray) and under
    ``ray_roots`` (the `ray start` processes of a cluster they joined)."""
    used = {"worker": sum(cpu_seconds(pid) for pid in workers)}
    if broker is not None:
        used["broker"] = cpu_seconds(broker)
    for root in [*workers, *ray_roots]:
        for process in descendants(root):
            name = actor_class(process.title)
            if name is not None:
                used[name] = used.get(name, 0.0) + cpu_seconds(process.pid)
    return used


def cpu_ms_per_event(
    before: dict[str, float], after: dict[str, float], events: int
) -> dict[str, float]:
    """CPU milliseconds per event each process spent between two `cpu_by_process` reads."""
    return {
        name: round((after[name] - before.get(name, 0.0)) * 1000.0 / events, 3)
        for name in sorted(after)
    }


def memory(worker_pid: int) -> dict[str, Any]:
    """{"worker": MB, "actors": {class: MB}} for the worker and its Ray actors."""
    actors: dict[str, float] = {}
    for process in descendants(worker_pid):
        name = actor_class(process.title)
        if name is not None:
            actors[name] = round(actors.get(name, 0.0) + rss_mb(process.pid), 1)
    return {"worker": round(rss_mb(worker_pid), 1), "actors": dict(sorted(actors.items()))}


class CpuSampler:
    """(epoch time, CPU seconds the processes ``pids`` have used together), every
    ``interval`` seconds while entered (`samples`)."""

    def __init__(self, pids: Sequence[int], interval: float = 0.1) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), sum(cpu_seconds(pid) for pid in self.pids)))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), sum(cpu_seconds(pid) for pid in self.pids)))
