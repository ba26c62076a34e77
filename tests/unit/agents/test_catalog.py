"""The catalog agent (`index_batch`): indexing failures and bad items dead-lettered
alone, item tombstones deleting in their place in a batch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from streams.catalog import index_batch
from streams.schemas import DeadLetter
from tests.unit.agents.helpers import FAST, FakeTopic, Message, Remote, actors


def test_an_indexing_failure_dead_letters_the_items_and_bad_items_go_alone() -> None:
    dead = FakeTopic()
    encoder = type("E", (), {"encode": Remote(lambda texts: 1 / 0)})()
    catalog = type("C", (), {"index": Remote(lambda items, vectors: len(items))})()
    good = Message(json.dumps({"item_id": "i1", "text": "a film"}).encode(), topic="items")
    bad = Message(b'{"item_id": "i2"}', topic="items", offset=1)
    both = actors(encoder=encoder, catalog=catalog)
    asyncio.run(index_batch([good, bad], dead_letters=dead, actors=both, retry=FAST))
    letters = [DeadLetter.model_validate(v) for v in dead.values()]
    assert [(d.offset, d.error) for d in letters] == [
        (1, "text: Field required"),
        (0, "indexing failed: ZeroDivisionError: division by zero"),
    ]
    assert encoder.encode.calls == 1  # the code's own error: not retried, the item is alone


def test_an_item_the_decoding_code_fails_on_is_dead_lettered_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams import catalog as catalog_agent

    real = catalog_agent.decode_item

    def flaky(raw: Any, **kwargs: Any) -> Any:
        if b"boom" in raw:
            raise MemoryError("too big")
        return real(raw, **kwargs)

    monkeypatch.setattr(catalog_agent, "decode_item", flaky)
    dead = FakeTopic()
    indexed: list[str] = []
    encoder = type("E", (), {"encode": Remote(lambda texts: [[0.0]] * len(texts))})()
    index = Remote(lambda items, vectors: indexed.extend(i.item_id for i in items))
    catalog = type("C", (), {"index": index})()
    msgs = [
        Message(json.dumps({"item_id": "i1", "text": "a"}).encode(), topic="items"),
        Message(b'{"item_id": "boom", "text": "b"}', topic="items", offset=1),
        Message(json.dumps({"item_id": "i3", "text": "c" * 20_000}).encode(), offset=2),
        Message(json.dumps({"item_id": "i4", "text": "d", "ts": 1e300}).encode(), offset=3),
    ]
    both = actors(encoder=encoder, catalog=catalog)
    asyncio.run(index_batch(msgs, dead_letters=dead, actors=both, retry=FAST))
    assert indexed == ["i1", "i3"]
    letters = [DeadLetter.model_validate(v) for v in dead.values()]
    assert [(d.offset, d.error.split(":")[0]) for d in letters] == [
        (1, "decoding failed"),
        (3, "ts must be epoch seconds in [0, 4102444800], got 1e+300"),
    ]
    assert letters[0].error == "decoding failed: MemoryError: too big"


def item_message(item_id: str | None, value: dict[str, Any] | None, offset: int) -> Message:
    key = None if item_id is None else item_id.encode()
    raw = None if value is None else json.dumps(value).encode()
    return Message(raw, key=key, topic="items", offset=offset)


def test_an_item_tombstone_deletes_the_item_in_its_place_in_the_batch() -> None:
    calls: list[tuple[str, list[str]]] = []
    encoder = type("E", (), {"encode": Remote(lambda texts: [[0.0]] * len(texts))})()
    index = Remote(lambda items, vectors: calls.append(("index", [i.item_id for i in items])))
    delete = Remote(lambda ids: calls.append(("delete", list(ids))))
    catalog = type("C", (), {"index": index, "delete": delete})()
    msgs = [
        item_message("i1", {"item_id": "i1", "text": "a"}, 0),
        item_message("i2", {"item_id": "i2", "text": "b"}, 1),
        item_message("i1", None, 2),  # tombstone
        item_message(" i2 ", None, 3),  # keys are stripped as ids are
        item_message("i1", {"item_id": "i1", "text": "back"}, 4),
        item_message(None, None, 5),  # a tombstone of nothing
        item_message("i\x00", None, 6),
    ]
    dead = FakeTopic()
    both = actors(encoder=encoder, catalog=catalog)
    asyncio.run(index_batch(msgs, dead_letters=dead, actors=both, retry=FAST))
    assert calls == [("index", ["i1", "i2"]), ("delete", ["i1", "i2"]), ("index", ["i1"])]
    letters = [DeadLetter.model_validate(v) for v in dead.values()]
    assert [(d.offset, d.error) for d in letters] == [
        (5, "empty value (null record) without a key: no item to delete"),
        (6, "item_id: control character U+0000 at 1"),
    ]


def test_a_delete_the_catalog_fails_on_is_dead_lettered_alone() -> None:
    def delete(ids: list[str]) -> int:
        if "bad" in ids:
            raise ValueError("cannot delete bad")
        return 0

    catalog = type("C", (), {"delete": Remote(delete)})()
    msgs = [item_message("ok", None, 0), item_message("bad", None, 1)]
    dead = FakeTopic()
    asyncio.run(index_batch(msgs, dead_letters=dead, actors=actors(catalog=catalog), retry=FAST))
    (letter,) = [DeadLetter.model_validate(v) for v in dead.values()]
    assert (letter.offset, letter.error) == (1, "delete failed: ValueError: cannot delete bad")
