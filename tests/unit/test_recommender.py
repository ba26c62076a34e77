"""`Recommender` on a real (in-memory Qdrant) store with a tiny deterministic text encoder.

Items are hand-made: "space" items lie near axis 0, "food" items near axis 1, so which
items come back is predictable.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from workers.config import RecommendConfig
from workers.model import Vector
from workers.recommend_io import EventIn, RecResult, UserState
from workers.recommender import Recommender
from workers.store import Hit, ItemPoint, SearchRequest, VectorStore, open_store

DIM = 8


def axis(i: int, tilt: int | None = None, eps: float = 0.1) -> Vector:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    if tilt is not None:
        v[tilt] = eps
    return v


# Growing tilts make every ranking strict: s1 > s2 > s3 in closeness to axis 0 (same for
# food), and s1/f1 share their tilt axis, so they are slightly similar to each other.
SPACE = {"s1": axis(0, 2, 0.1), "s2": axis(0, 3, 0.2), "s3": axis(0, 4, 0.3)}
FOOD = {"f1": axis(1, 2, 0.1), "f2": axis(1, 3, 0.2), "f3": axis(1, 4, 0.3)}
BOOKS = {"b1": axis(0, 5, 0.01)}  # the closest to "space", but another scenario


class FakeEncoder:
    """Fixed unit vectors for known texts; records what it was asked to encode."""

    TEXTS: ClassVar[dict[str, Vector]] = {
        "rockets and astronauts": axis(0),
        "pasta recipes": axis(1),
    }

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> Vector:
        self.calls.append(list(texts))
        return np.stack([self.TEXTS[t] for t in texts]).astype(np.float32)


def point(item_id: str, vector: Vector, scenario: str = "movies") -> ItemPoint:
    return ItemPoint(item_id=item_id, scenario=scenario, text=item_id, base=vector, rec=vector)


@pytest.fixture
def store() -> Iterator[VectorStore]:
    store = open_store("local::memory:", dim=DIM)
    points = [point(i, v) for i, v in {**SPACE, **FOOD}.items()]
    store.upsert(points + [point(i, v, "books") for i, v in BOOKS.items()])
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


class StaticCatalog:
    """The store as a catalog that stays at model version 0 (no adapter published)."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, dict[str, Vector]]:
        return 0, self.store.vectors(item_ids)

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        return 0, self.store.search(requests)

    def adapter(self, version: int) -> None:
        raise AssertionError(f"a static catalog never moves (asked for version {version})")


class Pairs:
    """A `Recommender` whose `recommend` returns (results, states), as these tests read."""

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender

    def recommend(
        self, events: Sequence[EventIn], states: dict[str, Any]
    ) -> tuple[list[RecResult], dict[str, UserState]]:
        batch = self.recommender.recommend(events, states)
        return batch.results, batch.states


def make(store: VectorStore, encoder: FakeEncoder, **config: Any) -> Pairs:
    return Pairs(Recommender(RecommendConfig(**config), StaticCatalog(store), encoder, dim=DIM))


def ev(event_id: str, user: str, item: str, **kw: Any) -> EventIn:
    return EventIn(event_id=event_id, user_id=user, item_id=item, scenario="movies", **kw)


def ids(items: list[tuple[str, float]]) -> list[str]:
    return [i for i, _ in items]


def test_recommends_nearest_items_excluding_history(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    rec = make(store, encoder, top_k=10)
    state = UserState(history=["s2"], weights=[1.0], vector=SPACE["s2"].copy(), events=1)
    results, states = rec.recommend([ev("e1", "u1", "s1")], {"u1": state})
    (result,) = results
    assert (result.event_id, result.user_id) == ("e1", "u1")
    got = ids(result.items)
    assert got[0] == "s3"  # the one space item not yet seen
    assert set(got) == {"s3", "f1", "f2", "f3"}  # history s1, s2 excluded; b1 other scenario
    scores = [s for _, s in result.items]
    assert scores == sorted(scores, reverse=True)
    assert states["u1"].history == ["s2", "s1"]
    assert states["u1"].events == 2
    assert states["u1"].scenario == "movies"


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_top_k_is_respected(store: VectorStore, encoder: FakeEncoder, top_k: int) -> None:
    results, _ = make(store, encoder, top_k=top_k).recommend([ev("e", "u", "f1")], {})
    assert ids(results[0].items) == ["f2", "f3", "s1"][:top_k]


def test_scenario_filter(store: VectorStore, encoder: FakeEncoder) -> None:
    rec = make(store, encoder, top_k=10)
    results, _ = rec.recommend([ev("e", "u", "s1")], {})
    assert "b1" not in ids(results[0].items)  # nearest to the query, but another scenario
    books = EventIn("e2", "reader", "s1", scenario="books")
    results, _ = rec.recommend([books], {})
    assert ids(results[0].items) == ["b1"]


def test_state_is_threaded_through_events_of_one_user_in_a_batch(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    rec = make(store, encoder, top_k=10, recency=0.5)
    batch = [ev("e1", "u1", "s1"), ev("e2", "u2", "f1"), ev("e2b", "u1", "f1")]
    results, states = rec.recommend(batch, {})
    assert [r.event_id for r in results] == ["e1", "e2", "e2b"]
    assert ids(results[0].items)[:2] == ["s2", "s3"]
    assert ids(results[1].items)[:3] == ["f2", "f3", "s1"]  # u2 is independent of u1
    # The second event of u1 sees the first: s1 is excluded, and the query is
    # 0.5 * s1 + f1, so the food items lead and the space items follow.
    assert ids(results[2].items) == ["f2", "f3", "s2", "s3"]
    assert states["u1"].history == ["s1", "f1"]
    assert states["u1"].events == 2
    assert states["u2"].history == ["f1"]
    expected = 0.5 * (SPACE["s1"] / np.linalg.norm(SPACE["s1"])) + FOOD["f1"] / np.linalg.norm(
        FOOD["f1"]
    )
    got = states["u1"].vector
    assert got is not None
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_item_stays_pending_until_catalogued(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    rec = make(store, encoder, top_k=3, recency=0.5)
    state = UserState(history=["s1"], weights=[1.0], vector=SPACE["s1"].copy(), events=1)
    results, states = rec.recommend([ev("e1", "u1", "new-food")], {"u1": state})
    assert ids(results[0].items)[:2] == ["s2", "s3"]  # from the old state
    assert states["u1"].pending == ["new-food"]
    assert states["u1"].history == ["s1", "new-food"]
    np.testing.assert_array_equal(states["u1"].vector, SPACE["s1"])

    store.upsert([point("new-food", axis(1, 5))])
    # A later batch, about another item: the pending one is folded in and cleared.
    results, states = rec.recommend([ev("e2", "u1", "f1")], states)
    assert states["u1"].pending == []
    vector = states["u1"].vector
    assert vector is not None
    unit = axis(1, 5) / np.linalg.norm(axis(1, 5))
    f1 = FOOD["f1"] / np.linalg.norm(FOOD["f1"])
    np.testing.assert_allclose(vector, 0.5 * (0.5 * SPACE["s1"] + unit) + f1, rtol=1e-5, atol=1e-6)
    assert "new-food" not in ids(results[0].items)


def test_event_text_moves_the_query_towards_the_text(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    plain, _ = make(store, encoder, top_k=1).recommend([ev("e", "u", "s1")], {})
    assert ids(plain[0].items) == ["s2"]
    assert encoder.calls == []  # no text, nothing encoded

    rec = make(store, encoder, top_k=1, text_weight=3.0)
    texted, states = rec.recommend([ev("e", "u", "s1", text="pasta recipes")], {})
    assert encoder.calls == [["pasta recipes"]]
    assert ids(texted[0].items) == ["f1"]
    vector = states["u"].vector
    assert vector is not None
    s1 = SPACE["s1"] / np.linalg.norm(SPACE["s1"])
    # The text folds in as one more step of the model (at every version), after the item:
    # the item decays once by the recency (default 0.95).
    np.testing.assert_allclose(vector, 0.95 * s1 + 3.0 * axis(1), rtol=1e-5, atol=1e-6)


def test_blank_text_is_not_encoded(store: VectorStore, encoder: FakeEncoder) -> None:
    make(store, encoder).recommend([ev("e", "u", "s1", text="   ")], {})
    assert encoder.calls == []


def test_new_user_with_unknown_item_gets_the_scenario_trend(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    rec = make(store, encoder, top_k=2)
    rec.recommend([ev("e1", "fan", "f1"), ev("e2", "fan", "f2")], {})
    results, states = rec.recommend([ev("e3", "newbie", "never-seen")], {})
    # food is what is being watched (f2, the latest, weighs most)
    assert ids(results[0].items) == ["f2", "f1"]
    assert states["newbie"].vector is None
    assert states["newbie"].pending == ["never-seen"]
    # The trend is per scenario: nothing is known about "books".
    books, _ = rec.recommend([EventIn("e4", "reader", "never-seen", scenario="books")], {})
    assert books[0].items == []


def test_a_user_with_nothing_known_gets_the_trend_as_of_their_event_within_a_batch(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    """The trend a new user's list comes from holds the items of the batch's events
    before theirs (earlier waves), not after: a newbie's first event comes before the
    fan's, their second after the fan's first (f1) and with the fan's second (f2)."""
    rec = make(store, encoder, top_k=1)
    batch = [
        ev("n1", "newbie", "never-seen"),
        ev("a1", "fan", "f1"),
        ev("n2", "newbie", "never-seen-2"),
        ev("a2", "fan", "f2"),
    ]
    results, _ = rec.recommend(batch, {})
    assert [ids(r.items) for r in results] == [[], ["f2"], ["f1"], ["f3"]]
    # after the batch, the trend holds both (f2, the latest, weighs most)
    later, _ = rec.recommend([ev("n3", "other", "never-seen")], {})
    assert ids(later[0].items) == ["f2"]


def test_nothing_known_gives_an_empty_list(store: VectorStore, encoder: FakeEncoder) -> None:
    results, states = make(store, encoder).recommend([ev("e1", "u", "unknown")], {"u": None})
    assert results[0].items == []
    assert results[0].event_id == "e1"
    assert states["u"].history == ["unknown"]


def test_input_states_are_not_mutated(store: VectorStore, encoder: FakeEncoder) -> None:
    states = {
        "u1": UserState(
            history=["s1", "later"],
            weights=[1.0, 1.0],
            pending=["later"],
            vector=SPACE["s1"].copy(),
        ),
        "u2": None,
    }
    before = copy.deepcopy(states)
    _, new = make(store, encoder).recommend([ev("e1", "u1", "s2"), ev("e2", "u2", "f1")], states)
    given, kept = states["u1"], before["u1"]
    assert given is not None and kept is not None and states["u2"] is None
    assert (given.history, given.weights, given.pending, given.events) == (
        kept.history,
        kept.weights,
        kept.pending,
        kept.events,
    )
    assert given.vector is not None and kept.vector is not None
    assert given.vector.tobytes() == kept.vector.tobytes()
    assert new["u1"] is not states["u1"]
    assert new["u1"].history == ["s1", "later", "s2"]


def test_batching_does_not_change_results(store: VectorStore, encoder: FakeEncoder) -> None:
    """An event's exclusions are the user's history as of that event, not as of the end of
    the micro-batch: the same stream gives the same recommendations however it is batched."""
    stream = [ev("e1", "u", "s1"), ev("e2", "u", "s2"), ev("e3", "u", "f1")]
    together, _ = make(store, encoder).recommend(stream, {})
    one_by_one, state = [], None
    alone = make(store, encoder)
    for event in stream:
        [result], states = alone.recommend([event], {"u": state})
        one_by_one.append(result)
        state = states["u"]
    assert [r.items for r in together] == [r.items for r in one_by_one]
    first = [item for item, _ in together[0].items]
    assert "s2" in first, "s2 comes later in the batch: it must still be recommendable at e1"


def test_an_event_seen_again_is_served_but_applied_once(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    """A batch re-processed after a crash: the state and the samples change once."""
    rec = make(store, encoder)
    stream = [ev("e1", "u", "s1"), ev("e2", "u", "s2")]
    first = rec.recommender.recommend(stream, {})
    again = rec.recommender.recommend([*stream, ev("e3", "u", "f1")], first.states)
    state = again.states["u"]
    assert [r.event_id for r in again.results] == ["e1", "e2", "e3"]  # all served
    assert state.events == 3 and state.history == ["s1", "s2", "f1"]
    assert state.recent_events == ["e1", "e2", "e3"]
    # e1 and e2 yield no second sample; e3's sample has the history as of e3.
    assert [(s.history, s.target) for s in again.samples] == [(("s1", "s2"), "f1")]
    once = rec.recommender.recommend([ev("e3", "u", "f1")], first.states)
    assert state.vector is not None and once.states["u"].vector is not None
    assert state.vector.tobytes() == once.states["u"].vector.tobytes()


def test_an_event_that_must_not_learn_is_served_and_folded_but_yields_no_sample(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    """`learn=False` (an evaluation probe): the user moves as usual, the trainer gets nothing."""
    rec = make(store, encoder)
    first = rec.recommender.recommend([ev("e1", "u", "s1"), ev("e2", "u", "s2")], {})
    assert [(s.history, s.target) for s in first.samples] == [(("s1",), "s2")]
    probe = rec.recommender.recommend([ev("e3", "u", "f1", learn=False)], first.states)
    learned = rec.recommender.recommend([ev("e3", "u", "f1")], first.states)
    assert probe.samples == [] and len(learned.samples) == 1
    assert [r.items for r in probe.results] == [r.items for r in learned.results]
    assert probe.states["u"].history == ["s1", "s2", "f1"]


def test_the_dedup_window_is_bounded(store: VectorStore, encoder: FakeEncoder) -> None:
    rec = make(store, encoder, dedup_window=2)
    out = rec.recommender.recommend([ev(f"e{n}", "u", "s1") for n in range(5)], {})
    assert out.states["u"].recent_events == ["e3", "e4"]
    late = rec.recommender.recommend([ev("e0", "u", "s2")], out.states)  # beyond the window
    assert late.states["u"].events == 6


def test_trend_vectors_are_kept_for_the_most_recently_active_scenarios(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    pairs = make(store, encoder, trend_scenarios=2)
    for n, scenario in enumerate(["a", "b", "a", "c"]):
        pairs.recommender.recommend([EventIn(f"e{n}", f"u{n}", "s1", scenario=scenario)], {})
    assert list(pairs.recommender.trend) == ["a", "c"]  # b: the least recently active, dropped


def test_a_batch_serves_each_event_as_one_at_a_time_would(
    store: VectorStore, encoder: FakeEncoder
) -> None:
    """Users' events interleaved in one batch (kept in waves, each user's sequence
    scanned at once) give the results and states of serving every event alone, in order."""
    from workers.recommender import waves

    items = ["s1", "f1", "s2", "f2", "s3", "f3"]
    batch = [ev(f"e{n}", f"u{n % 3}", items[(n * 5) % 6]) for n in range(12)]
    batch.append(ev("e12", "u1", "f1", text="pasta recipes"))
    assert [len(w) for w in waves(batch)] == [3, 3, 3, 3, 1]  # u1 has a 5th event
    together_results, together = make(store, encoder).recommend(batch, {})
    alone = make(store, encoder)
    states: dict[str, Any] = {}
    for event, result in zip(batch, together_results, strict=True):
        (single,), new = alone.recommend([event], states)
        states.update(new)
        assert single.event_id == result.event_id
        assert ids(single.items) == ids(result.items), event.event_id
        np.testing.assert_allclose(
            [s for _, s in single.items], [s for _, s in result.items], atol=1e-5
        )
    for user, state in together.items():
        assert state.history == states[user].history and state.events == states[user].events
        np.testing.assert_allclose(state.vector, states[user].vector, atol=1e-6)


def test_a_batch_says_when_the_recommender_ran_it(store: VectorStore, encoder: FakeEncoder) -> None:
    rec = make(store, encoder).recommender
    before = time.time()
    batch = rec.recommend([ev("e", "u", "f1")], {})
    started, finished = batch.ran
    assert before <= started <= finished <= time.time()
