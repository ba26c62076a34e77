"""The users table's changelog writes, against a real broker: each is kept until a
batch takes it, its delivery is confirmed, and a key is written again with its current
value (a tombstone once it is gone)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from streams.app import create_app
from streams.delivery import confirm_writes
from streams.kafka_settings import KafkaConfig
from streams.settings import RetryConfig, Settings
from tooling.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def _write_and_confirm(bootstrap: str, data_dir: Path) -> list[tuple[bytes, bytes | None]]:
    pipeline = create_app(
        Settings(kafka=KafkaConfig(broker=bootstrap, partitions=2), data_dir=data_dir)
    )
    users = pipeline.users
    await pipeline.app.producer.start()
    try:
        await users.changelog_topic.maybe_declare()
        users[b"u1"] = b'{"v": 1}'  # the table holds bytes (encode_state's JSON)
        users[b"u2"] = b'{"v": 2}'
        del users[b"u2"]
        writes = users.take_unconfirmed()
        assert [key for key, _ in writes] == [b"u1", b"u2", b"u2"]
        assert users.take_unconfirmed() == []  # taken once
        await confirm_writes(writes, users.resend, RetryConfig())
        assert all(delivery.result().offset >= 0 for _, delivery in writes)
        users[b"u1"] = b'{"v": 3}'
        users.take_unconfirmed()
        again = [(key, users.resend(key)) for key in (b"u1", b"u2")]
        await confirm_writes(again, users.resend, RetryConfig())
        return [(key, delivery.message.value) for key, delivery in again]
    finally:
        await pipeline.app.producer.stop()


def test_changelog_writes_are_confirmed_and_written_again_as_they_are_now(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rewritten = asyncio.run(_write_and_confirm(broker.bootstrap, tmp_path))
    assert [(key, json.loads(value) if value else value) for key, value in rewritten] == [
        (b"u1", {"v": 3}),
        (b"u2", None),
    ]
