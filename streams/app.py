"""The Faust application: topics, the per-user table, and the agents wired to Ray actors.

items ──► catalog agent ──► encoder + store actors
events ─► ingest agent ──► <app_id>-events-by-user (key user_id) ──► recommend agent
          │  (invalid ─► dead-letters)              │ users table (changelog)
          │                                         ├─► recommender actor
          │                                         └─► recommendations
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import traceback
from dataclasses import dataclass
from typing import Any, cast

import faust
import mode
from aiokafka.partitioner import murmur2
from faust.stores.rocksdb import Store as RocksStore

from streams.batching import ReadyStream
from streams.kafka_auth import faust_credentials
from streams.kafka_settings import KafkaConfig
from streams.settings import Settings, UsersConfig
from streams.transport import transport_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    items: Any
    events: Any
    by_user: Any
    recommendations: Any
    dead_letters: Any


@dataclass(frozen=True)
class Pipeline:
    """Everything an agent needs: the app, its topics and tables, and the settings."""

    app: faust.App
    topics: Topics
    users: Any  # faust Table: user_id (UTF-8 bytes) -> user_state.encode_state(UserState) bytes
    settings: Settings


class _App(faust.App):
    """faust.App whose Kafka transport takes streamrec's fetch long-poll setting."""

    kafka: KafkaConfig = KafkaConfig()  # set per instance in create_app

    def _new_transport(self) -> Any:
        cls = transport_class(self.kafka)
        return cls(self.conf.broker_consumer, self)

    #: The error an agent stopped this worker with (`_on_agent_error`), or None.
    failure: BaseException | None = None

    async def _on_agent_error(self, agent: Any, error: BaseException) -> None:
        """An agent's loop raised (a record the broker refused for good, a bug): stop this
        worker gracefully, as SIGTERM does, and have it exit with status 1
        (`streams.worker.run`), rather than let Faust restart the agent past its failed
        batch. That batch's offsets were never released (`streams.inflight.hold`), so
        every later offset of its partitions stayed uncommitted too: a restarted agent
        would serve the later records while the committed offset stood still and their
        acknowledgements piled up, all to be served again at the next restart. Stopped,
        the worker commits nothing past the failure, and its restart, or another worker
        of the group, reads the failed batch again: as Kafka Streams' default for a fatal
        error, which shuts its client down. Faust's own handler runs first (it commits
        what was released); the agent is not restarted (``agent_supervisor``)."""
        await super()._on_agent_error(agent, error)
        log.critical("agent %s failed, stopping this worker: %r", agent.name, error)
        # Faust's stop waits while a message that started processing is unacknowledged
        # and alive; the failed batch's messages stay unacknowledged, so nothing may keep
        # them alive: the frames the error went through let go of their variables.
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            traceback.clear_frames(current.__traceback__)
            current = current.__cause__ or current.__context__
        if self.failure is None:
            self.failure = error
            os.kill(os.getpid(), signal.SIGTERM)


class DirectTopic:
    """A topic the worker only produces to, straight through the app's producer.

    Faust's ``Topic.send`` wraps each record in its own message and future objects and
    runs its send sensors before it reaches aiokafka's ``send``: 7 % of the worker's
    interpreter time in a training-off firehose profile went there, one record per
    event (BENCHMARKS.md, session 27). The recommendations are produced here instead:
    the same producer, the same partitioner (the key's murmur2), the same delivery
    future to await (`streams.delivery.Outbox`)."""

    def __init__(self, app: faust.App, name: str) -> None:
        self.app, self.name = app, name

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[Any]:
        """Queue one record; its delivery's future (aiokafka's ``RecordMetadata``)."""
        producer = await self.app.maybe_start_producer()
        delivery = await producer.send(self.name, key, value, None, None, None)
        return cast("asyncio.Future[Any]", delivery)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the producer's partitioner (murmur2, as the Java client) gives
    ``key``: where the users table's changelog and the by-user topic put a user."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def _delivered(delivery: asyncio.Future[Any]) -> bool:
    return delivery.done() and not delivery.cancelled() and delivery.exception() is None


class _KeyPartitionedRocksStore(RocksStore):
    """Faust's RocksDB store, filing each key under the partition the changelog puts it
    on (murmur2 of the key, as the producer's partitioner), not under the current event's
    partition as Faust does: with ``use_partitioner=True`` and micro-batches spanning
    partitions that would be another partition's database (docs/ENVIRONMENT-NOTES.md)."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = partition_of(key, self.table.partitions or self.app.conf.topic_partitions)
        self._db_for_partition(partition).put(key, value)
        self._key_index[key] = partition


class _UsersTable(faust.Table[bytes, Any]):
    """The users table; a ``rocksdb://`` store is the key-partitioned one. Every
    changelog write is kept until a batch takes it to confirm its delivery
    (`streams.delivery`: Faust's commit does not check that it was delivered)."""

    #: Past this many untaken writes, the delivered ones are dropped when one is added
    #: (writes made outside batches, such as expiry's, wait for the next batch).
    PRUNE_AT = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unconfirmed: list[tuple[Any, asyncio.Future[Any]]] = []

    def send_changelog(self, partition: Any, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        delivery = super().send_changelog(partition, key, value, *args, **kw)
        if len(self.unconfirmed) >= self.PRUNE_AT:
            self.unconfirmed = [w for w in self.unconfirmed if not _delivered(w[1])]
        self.unconfirmed.append((key, delivery))
        return delivery

    def take_unconfirmed(self) -> list[tuple[Any, asyncio.Future[Any]]]:
        taken, self.unconfirmed = self.unconfirmed, []
        return taken

    def resend(self, key: Any) -> asyncio.Future[Any]:
        value = self.data.get(key)
        partition = self.partition_for_key(key)
        if value is None:
            delivery = self.send_changelog(partition, key, None, value_serializer="raw")
        else:
            delivery = self.send_changelog(partition, key, value)
        return cast("asyncio.Future[Any]", delivery)

    def _new_store_by_url(self, url: Any) -> Any:
        if not str(url).startswith("rocksdb:"):
            return super()._new_store_by_url(url)
        return _KeyPartitionedRocksStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            options=self.options,
        )


def users_store_options(users: UsersConfig) -> dict[str, int]:
    """The users table's memory settings -> the options of each partition database of its
    RocksDB store (Faust's ``RocksDBOptions``; a ``memory://`` store ignores them)."""
    mib = 1024 * 1024
    return {
        "write_buffer_size": users.write_buffer_mb * mib,
        "max_write_buffer_number": users.write_buffers,
        "block_cache_size": users.block_cache_mb * mib,
    }


#: What RocksDB holds in memory, by part -> the property that says how much (bytes).
ROCKSDB_MEMORY = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


def users_store_memory(users: Any) -> dict[str, int]:
    """Bytes the users table's RocksDB partition databases hold in memory, by part,
    summed over the databases open in this worker (empty for a ``memory://`` store)."""
    dbs = getattr(users.data, "_dbs", None)  # faust's RocksDB Store: {partition: Rdict}
    if not dbs:
        return {}
    return {
        part: sum(int(db.property_int_value(name) or 0) for db in list(dbs.values()))
        for part, name in ROCKSDB_MEMORY.items()
    }


def by_user_topic_name(settings: Settings) -> str:
    return f"{settings.kafka.app_id}-events-by-user"


def create_app(settings: Settings) -> Pipeline:
    """Build the Faust app and declare its topics and table (no agents yet)."""
    kafka = settings.kafka
    app = _App(
        kafka.app_id,
        broker=kafka.broker,
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication,
        broker_session_timeout=kafka.session_timeout,
        broker_heartbeat_interval=max(kafka.session_timeout / 10, 0.1),
        broker_commit_interval=kafka.commit_interval,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=kafka.linger_ms / 1000.0,
        producer_max_request_size=kafka.max_request_size,
        producer_max_batch_size=min(kafka.producer_batch_bytes, kafka.max_request_size),
        web_enabled=False,
        Stream=ReadyStream,  # agents take micro-batches with `take_ready`
        # An agent that failed is not restarted past its failed batch: the worker stops
        # (`_App._on_agent_error`).
        agent_supervisor=mode.ForfeitOneForOneSupervisor,
        broker_credentials=faust_credentials(kafka),
    )
    app.kafka = kafka

    def raw_topic(name: str, *, internal: bool = False) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=kafka.partitions,
            internal=internal,
        )

    names = kafka.topics
    topics = Topics(
        items=raw_topic(names.items),
        events=raw_topic(names.events),
        by_user=raw_topic(by_user_topic_name(settings), internal=True),
        recommendations=DirectTopic(app, names.recommendations),
        dead_letters=raw_topic(names.dead_letters),
    )
    users = app.tables.add(
        _UsersTable(
            app,
            name="users",
            default=None,
            partitions=kafka.partitions,
            # Keys are the raw UTF-8 user ids (bytes), exactly the by-user topic's keys, and
            # the changelog is partitioned by the producer's partitioner on them (murmur2, as
            # the Java client): a user's state sits on the partition number of their events
            # for any partition count, so a worker owning a by-user partition owns its users'
            # state. (A str key would be JSON-encoded, quotes included, and hash elsewhere.)
            # Values: the JSON bytes of user_state.encode_state, stored and sent as they are.
            # Faust's "json" codec, used before, wrote the same JSON, but it serialized each
            # state twice per write (store and changelog) and parsed it into a dict on
            # every read, for decode_state to validate (BENCHMARKS.md, session 31).
            key_type=bytes,
            value_type=bytes,  # Faust's "raw" codec
            use_partitioner=True,
            options=users_store_options(settings.users),
        )
    )
    return Pipeline(app=app, topics=topics, users=users, settings=settings)
