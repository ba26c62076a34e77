"""The demo's choices: users of different tastes, the live hit rate it shows."""

from __future__ import annotations

from tooling.consume import Received
from tooling.demo import Scoreboard, distinct_tastes, genre_profile

GENRES = {
    "toy": ["Animation", "Children"],
    "cars": ["Animation", "Children"],
    "saw": ["Horror"],
    "it": ["Horror", "Thriller"],
    "notebook": ["Romance", "Drama"],
}


def test_users_far_apart_in_genre_are_picked_first() -> None:
    history = {
        "kid": ["toy", "cars", "toy"],
        "kid2": ["cars", "toy"],
        "scared": ["saw", "it"],
        "romantic": ["notebook"],
    }
    assert genre_profile(["toy", "saw"], GENRES) == {
        "Animation": 1 / 3,
        "Children": 1 / 3,
        "Horror": 1 / 3,
    }
    picked = distinct_tastes(history, GENRES, 3)
    assert picked[0] == "kid"  # the most events
    assert set(picked[1:]) == {"scared", "romantic"}  # kid2 has kid's taste


def received(topic: str, value: dict[str, object]) -> Received:
    return Received(topic=topic, key=None, value=value, received_at=0.0, timestamp=0.0)


def test_each_event_is_judged_against_the_list_its_user_had_before() -> None:
    items_of = {"e1": "a", "e2": "b", "e3": "x", "e4": "z"}
    board = Scoreboard(items_of)
    rec = "recommendations"

    def serve(user: str, item: str, items: list[str], version: int = 0) -> None:
        value = {
            "user_id": user,
            "event_id": next(e for e, i in items_of.items() if i == item),
            "model_version": version,
            "latency_ms": 5.0,
            "items": [{"item_id": i} for i in items],
        }
        board.add(received(rec, value), "dead-letters")

    serve("u", "a", ["b", "c"])  # first event: nothing to judge
    serve("u", "b", ["c"])  # b was in the list: a hit
    serve("v", "x", ["y"])
    serve("u", "z", ["q"], version=2)  # z was not in ["c"]: a miss
    board.add(received("dead-letters", {"error": "bad"}), "dead-letters")
    assert (board.judged, board.hits, board.version, board.recommendations) == (2, 1, 2, 4)
    assert list(board.recent) == [True, False] and len(board.dead) == 1
