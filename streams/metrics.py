"""What a worker exposes to Prometheus (``/metrics`` over HTTP, `prometheus_client`).

    agents ──count / observe──► these metrics ◄──scrape── Prometheus
    health timer ──refresh(lag, model version, catalog size, training)──┘

Every series is bounded: labels are a topic, a Ray call's name, a partition number or a
dead letter's kind (`deadletters.KINDS`), never a user, an item or a free-text reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Seconds: from 1 ms to a minute (an outage waited out shows in the top buckets).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)

EVENTS_IN = Counter("streamrec_events_in", "Records read from an input topic.", ["topic"])
RECOMMENDATIONS = Counter("streamrec_recommendations", "Recommendations produced.")
DEAD_LETTERS = Counter("streamrec_dead_letters", "Records sent to dead letters.", ["kind"])
LATENCY = Histogram(
    "streamrec_latency_seconds",
    "From an event's produce timestamp to its recommendation's produce time.",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "streamrec_batch_size",
    "Events per micro-batch sent to the recommender.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
#: Where an event's time goes, summed over events (divide by the stage's event count):
#: ``read`` its produce timestamp -> its micro-batch taken by an agent (broker, fetch,
#: batch window, agent backlog); ``route`` the batch validated and routed; ``queue``
#: waiting for the serving lock (the batch ahead); ``serve`` states, recommend call,
#: writes; ``produce`` its recommendations sent. `observe_stage` keeps the two in step.
STAGE_SECONDS = Counter(
    "streamrec_stage_seconds",
    "Seconds events spent in each stage of serving, summed over events.",
    ["stage"],
)
STAGE_EVENTS = Counter("streamrec_stage_events", "Events timed by each stage.", ["stage"])
STAGES = ("read", "route", "queue", "serve", "produce")
RAY_CALL = Histogram(
    "streamrec_ray_call_seconds",
    "Ray calls awaited by an agent, retries included.",
    ["call"],
    buckets=LATENCY_BUCKETS,
)
RECOMMEND_PARTS = Histogram(
    "streamrec_recommend_part_seconds",
    "A served recommend call in parts, by the wall clocks of the worker and the "
    "recommender (meaningful on one host): 'there' from submitting to the recommender "
    "starting it (request pickling and transfer, the actor's queue, unpickling; retries "
    "included), 'work' inside it, 'back' from its end to the worker having the answer "
    "(answer pickling, transfer, the event loop noticing, unpickling).",
    ["part"],
    buckets=LATENCY_BUCKETS,
)
RAY_FAILURES = Counter(
    "streamrec_ray_call_failures",
    "Failed tries of a Ray call: transient (waited out) or input (the record's fault).",
    ["call", "kind"],
)
SENT_AGAIN = Counter(
    "streamrec_sent_again",
    "Records produced again after a transient failure of the broker: recommendations, "
    "changelog (users-table writes), forwards_and_dead_letters.",
    ["what"],
)
RECORDS_DROPPED = Counter(
    "streamrec_records_dropped",
    "Records a fetch returned behind their partition's read offset and the fetcher dropped "
    "(already handed to the streams: fetched again after a seek back). A few after a "
    "rebalance or a recovery are duplicates; many where the worker's commits did not move "
    "would be events skipped (docs/ENVIRONMENT-NOTES.md, the seek fence).",
    ["topic"],
)
LAG = Gauge(
    "streamrec_consumer_lag",
    "Records of an events or by-user partition this worker owns not yet committed.",
    ["topic", "partition"],
)
MODEL_VERSION = Gauge("streamrec_model_version", "Model version this worker's recommender serves.")
CATALOG_ITEMS = Gauge("streamrec_catalog_items", "Items in the catalog.")
TRAINING_ROUNDS = Gauge("streamrec_training_rounds", "Training rounds published by the trainer.")
TRAINING_LOSS = Gauge("streamrec_training_loss", "Loss of the trainer's last round.")
TRAINING_FAILED = Gauge(
    "streamrec_training_failed_rounds", "Training rounds that failed (nothing published)."
)
TRAINING_REJECTED = Gauge(
    "streamrec_training_rejected_candidates",
    "Candidate versions the gate turned down (not better than the live one on fresh samples).",
)
GATE_SCORE = Gauge(
    "streamrec_training_gate_ndcg",
    "The gate's last NDCG@10 on held-out fresh samples: the live version, the candidate and "
    "the frozen model (its floor).",
    ["model"],
)


USERS_STORE = Gauge(
    "streamrec_users_store_bytes",
    "Memory of this worker's users-table RocksDB databases, by part (memtables, block_cache, "
    "table_readers).",
    ["part"],
)


def observe_stage(stage: str, seconds: float, events: int = 1) -> None:
    """``events`` events each spent ``seconds`` in ``stage`` (one of `STAGES`)."""
    STAGE_SECONDS.labels(stage=stage).inc(max(0.0, seconds) * events)
    STAGE_EVENTS.labels(stage=stage).inc(events)


def observe_recommend_parts(submitted: float, ran: tuple[float, float], answered: float) -> None:
    """One recommend call's parts (`RECOMMEND_PARTS`) from wall clocks: the worker's
    submit and answer, the recommender's start and end (0, 0 when it did not say)."""
    started, finished = ran
    if started <= 0.0:
        return
    for part, seconds in (
        ("there", started - submitted),
        ("work", finished - started),
        ("back", answered - finished),
    ):
        RECOMMEND_PARTS.labels(part=part).observe(max(seconds, 0.0))


def serve(port: int, bind: str) -> bool:
    """Start the ``/metrics`` endpoint on its own thread (port 0: none). A port in use
    (another worker on this host) is logged and the worker runs without it."""
    if not port:
        return False
    try:
        start_http_server(port, addr=bind)
    except OSError as exc:
        log.error("no metrics endpoint on %s:%d (%s): give each worker its port", bind, port, exc)
        return False
    log.info("metrics on http://%s:%d/metrics", bind, port)
    return True


_lagging: set[tuple[str, int]] = set()  # (topic, partition) with a lag series now


def set_lag(lag: Mapping[tuple[str, int], int]) -> None:
    """Lag of the (topic, partition)s owned now (series of the others removed)."""
    for topic, partition in _lagging - set(lag):
        LAG.remove(topic, str(partition))
    for (topic, partition), records in lag.items():
        LAG.labels(topic=topic, partition=str(partition)).set(records)
    _lagging.clear()
    _lagging.update(lag)


def set_training(status: Mapping[str, Any]) -> None:
    """The trainer's status (`TrainerService.status`) as gauges."""
    TRAINING_ROUNDS.set(float(status.get("rounds", 0)))
    loss = status.get("last_loss")
    if isinstance(loss, int | float):
        TRAINING_LOSS.set(float(loss))
    TRAINING_FAILED.set(float(status.get("failed_rounds", 0)))
    TRAINING_REJECTED.set(float(status.get("rejected", 0)))
    for model in ("live", "candidate", "frozen"):
        score = status.get(f"last_{model}_score")
        if isinstance(score, int | float):
            GATE_SCORE.labels(model=model).set(float(score))
