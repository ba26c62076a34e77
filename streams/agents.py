"""The worker's two agents: thin loops over `streams.events`, batches in flight.

    events ──ingest: route each record (`route_event`); serve the batch's local ones──┐
    by-user ──recommend: serve the batch (`recommend_batch`)──────────────────────────┤
                        `serve_records` under one lock, recommendations after it ◄────┘

Both agents take micro-batches and hand each to `streams.inflight.InFlight`: up to
``STREAMREC_KAFKA__BATCHES_IN_FLIGHT`` of them are served at once, each taking the
serving lock (states read, recommend call, states and samples written) in the order it
started, and producing its recommendations after releasing it; while a batch is queued
for the lock or holds it, the next one grows if it is small (`GROW_BELOW`,
`streams.inflight.Serving`). The lock is shared, so a user whose producers key events
both ways never has two batches' writes race on their state. A batch's offsets are
committed only once everything it produced is confirmed delivered: recommendations,
state writes, and the forwards and dead letters it sent through its
`streams.delivery.Receipts` (a batch with nothing to serve here waits in flight for
those alone).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from streams import metrics
from streams.app import Pipeline, Topics
from streams.delivery import Changelog, Outbox, Receipts, confirm_writes
from streams.events import recommend_batch, route_event, serve_records, served_in_place
from streams.inflight import InFlight, Serving, hold, release
from streams.settings import RetryConfig
from streams.trainer_feed import TrainerFeed
from workers.actors import Actors

#: Serve a batch, leaving its recommendations in the outbox given as ``outbox=``.
Served = Callable[..., Awaitable[None]]


async def serve_held(
    stream: Any,
    events: Sequence[Any],
    serve: Served | None,
    *,
    lock: AbstractAsyncContextManager[Any] | None,
    topics: Topics,
    changelog: Changelog,
    receipts: Receipts,
    retry: RetryConfig,
    served_events: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Serve a held batch (`streams.inflight`): its states under ``lock``, then its
    recommendations, its state writes and the records it sent as it went (``receipts``:
    forwards and dead letters) confirmed delivered (`streams.delivery`: the broker's
    transient failures waited out), then its events released for commit. A batch with
    nothing to serve here (``serve`` None) only confirms its receipts. A batch that
    fails or is cancelled (the worker stopping) is never released: Faust acknowledges
    it when the agent's loop body raises, but `hold`'s reference keeps its offsets, and
    every later one of its partitions, uncommitted; a failure stops the worker
    (`streams.app._App`), and its restart reads them again (at least once; its events
    already applied are served again and change nothing). Lost is nothing.
    The time spent waiting for the lock, under it and producing is timed per served
    event: ``served_events`` of the batch (None: all of them; an ingest batch also holds
    records it forwarded or dead-lettered, which are not served here)."""
    if serve is not None:
        if lock is None:
            raise ValueError("a batch with something to serve needs the serving lock")
        outbox = Outbox(retry)
        n = len(events) if served_events is None else served_events
        started = clock()
        async with lock:  # first: batches take the lock in the order they started
            locked = clock()
            await serve(outbox=outbox)
            writes = changelog.take_unconfirmed()  # this batch's, not the next one's
        served = clock()
        await outbox.send(topics)
        await confirm_writes(writes, changelog.resend, retry)
        await receipts.confirm(retry)
        metrics.observe_stage("queue", locked - started, n)
        metrics.observe_stage("serve", served - locked, n)
        metrics.observe_stage("produce", clock() - served, n)
    else:
        await receipts.confirm(retry)
    await release(stream, events)


#: While a batch is queued for the serving lock or holds it, the next one grows if it
#: has fewer events than this (`streams.batching`). At 1,000 events/s a serving step sees
#: ~15 events, so a paced batch always grows; under a backlog a batch has this many at
#: once and is cut as before. Growing every batch to full took 9 % off the firehose
#: (BENCHMARKS.md, session 38); 64 was not swept.
GROW_BELOW = 64

#: A taken micro-batch and the topics to send through (the batch's forwards and dead
#: letters kept in its `Receipts`) -> what serves it (`Served`, None: nothing to serve
#: here) and the produce timestamps (epoch seconds) of the events it serves.
Prepare = Callable[[Sequence[Any], Topics], Awaitable[tuple[Served | None, Sequence[float]]]]


def register(pipeline: Pipeline, actors: Actors) -> None:
    """The ingest agent (events -> served here, by-user topic or dead letters) and the
    recommend agent (by-user -> served), sharing one lock around serving."""
    kafka, retry, limits = (
        pipeline.settings.kafka,
        pipeline.settings.retry,
        pipeline.settings.limits,
    )
    topics, users = pipeline.topics, pipeline.users
    events_in = metrics.EVENTS_IN.labels(topic=kafka.topics.events)
    here = served_in_place(pipeline.app, kafka.partitions) if kafka.serve_in_place else None
    serving = Serving()  # one batch at a time reads and writes the users table
    feed = None if actors.trainer is None else TrainerFeed(actors.trainer)

    async def take(stream: Any, prepare: Prepare) -> None:
        """Micro-batches of ``stream``, each prepared, then held and served in flight."""
        flight = InFlight(kafka.batches_in_flight)
        try:
            batches = stream.take_ready(
                kafka.batch_size,
                linger=kafka.batch_within,
                idle=serving.idle,
                grow_below=GROW_BELOW,
            )
            async for batch in batches:
                taken, started = time.time(), time.perf_counter()
                # Held first: Faust acks the batch when this body ends, raising or not, so
                # a batch whose routing raised (a forward refused for good) stays
                # uncommitted too, and the worker stops (`streams.app._App`).
                hold(batch)
                receipts = Receipts()
                serve, produced = await prepare(batch, receipts.tracking(topics))
                if produced:
                    # The stages count each event once, where it is served: a forwarded
                    # record's read (its produce time on) is timed on the by-user agent.
                    n = len(produced)
                    metrics.observe_stage("read", sum(taken - t for t in produced) / n, n)
                    metrics.observe_stage("route", time.perf_counter() - started, n)
                # Queued from now: until this batch is served, a small next one grows.
                turn = None if serve is None else serving.queue()
                await flight.add(
                    serve_held(
                        stream,
                        batch,
                        serve,
                        lock=turn,
                        topics=topics,
                        changelog=users,
                        receipts=receipts,
                        retry=retry,
                        served_events=len(produced),
                    ),
                    done=None if turn is None else turn.leave,
                )
        finally:
            await flight.close()

    async def routed(batch: Sequence[Any], sent: Topics) -> tuple[Served | None, list[float]]:
        events_in.inc(len(batch))
        local = []
        for e in batch:
            record = await route_event(e.message, sent, limits, here)
            if record is not None:
                local.append(record)
        if not local:
            return None, []
        metrics.BATCH_SIZE.observe(len(local))
        serve = partial(
            serve_records, local, topics=sent, users=users, actors=actors, retry=retry, feed=feed
        )
        return serve, [r.source.timestamp for r in local]

    async def by_user(batch: Sequence[Any], sent: Topics) -> tuple[Served, list[float]]:
        messages = [e.message for e in batch]
        metrics.BATCH_SIZE.observe(len(messages))
        serve = partial(
            recommend_batch,
            messages,
            topics=sent,
            users=users,
            actors=actors,
            retry=retry,
            feed=feed,
        )
        # A by-user record carries its event's produce timestamp (`route_event`).
        return serve, [m.timestamp for m in messages]

    async def ingest(stream: Any) -> None:
        await take(stream, routed)

    async def recommend(stream: Any) -> None:
        await take(stream, by_user)

    pipeline.app.agent(topics.events, name="streamrec.ingest")(ingest)
    pipeline.app.agent(topics.by_user, name="streamrec.recommend")(recommend)
