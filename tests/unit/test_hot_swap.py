"""Online versions end to end on the real classes behind the actors (no Ray, no Kafka):

`Catalog` (qdrant-client local mode) + `Recommender` + `TrainerService` with a
real (small) adapter. A trained round publishes version v+1 on disk, the catalog is
re-projected from its stored base vectors, servers follow and label their results,
users are recomputed from their history, versions never go back, and a restart
resumes from the newest version.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from workers.adapters.io import (
    CONFIG_NAME,
    AdapterFiles,
    latest_version,
    load_adapter,
    prune_versions,
    version_dir,
)
from workers.catalog import Catalog, CatalogItem
from workers.config import AdapterStoreConfig, RecommendConfig, StoreConfig
from workers.model import Vector, model_of
from workers.recommend_io import EventIn
from workers.recommender import Recommender
from workers.store import Hit, SearchRequest
from workers.trainer_service import TrainerService
from workers.training import TrainingConfig

DIM = 16
N_ITEMS = 40


class NoText:
    def encode(self, texts: Sequence[str]) -> Vector:
        raise AssertionError(f"no event text expected, got {texts}")


def catalog_items() -> tuple[list[CatalogItem], Vector]:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    return [CatalogItem(f"i{n}", f"item {n}", "shop") for n in range(N_ITEMS)], base


def training(**overrides: Any) -> TrainingConfig:
    fields: dict[str, Any] = {
        "train_every_samples": 20,
        "train_every_seconds": 3600.0,
        "steps_per_round": 5,
        "batch_size": 16,
        "negatives": 8,
        "learning_rate": 0.01,
        "seed": 7,
        "gate": False,  # publishing mechanics; the gate has its own tests
        "max_share": 1.0,  # a round whenever one is due (the rest has its own test)
    }
    fields.update(overrides)
    return TrainingConfig(**fields)


def events(
    user: str, items: Sequence[int], start: int = 0, weights: Sequence[float] = ()
) -> list[EventIn]:
    weights = list(weights) or [1.0] * len(items)
    return [
        EventIn(f"{user}-{start + n}", user, f"i{i}", scenario="shop", weight=w)
        for n, (i, w) in enumerate(zip(items, weights, strict=True))
    ]


def version_of(catalog: Catalog) -> int:
    return catalog.lookup([])[0]


@pytest.fixture
def adapters(tmp_path: Path) -> AdapterStoreConfig:
    return AdapterStoreConfig(path=tmp_path / "adapters", keep=3)


@pytest.fixture
def store(tmp_path: Path, adapters: AdapterStoreConfig) -> Iterator[Catalog]:
    service = Catalog(StoreConfig(url=f"local:{tmp_path / 'qdrant'}"), DIM, adapters)
    items, base = catalog_items()
    service.index(items, base)
    try:
        yield service
    finally:
        service.close()


def serve(store: Catalog, adapters: AdapterStoreConfig) -> Recommender:
    config = RecommendConfig(top_k=5, exact_search=True)
    return Recommender(config, store, NoText(), dim=DIM)


def test_a_forgotten_user_s_samples_leave_the_inbox_and_the_replay_buffer(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    first = rec.recommend(events("u1", [1, 2, 3, 4]), {})
    other = rec.recommend(events("u2", [5, 6, 7]), {})
    assert {s.user_id for s in first.samples} == {"u1"} and len(first.samples) == 3
    trainer = TrainerService(training(), store, DIM, background=False)
    trainer.add([*first.samples, *other.samples])
    trainer.step(now=1.0)  # drained into the replay buffer (not yet due to train)
    later = rec.recommend(events("u1", [8, 9], start=100), {})
    trainer.add(later.samples)  # still in the inbox
    assert trainer.forget(["u1"]) == 3 + len(later.samples)
    assert [s.user_id for s in trainer.trainer.buffer] == ["u2", "u2"]
    trainer.step(now=2.0)
    assert {s.user_id for s in trainer.trainer.buffer} == {"u2"}
    assert trainer.forget(["u1"]) == 0


def test_a_round_publishes_a_version_and_servers_follow(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    first = rec.recommend(events("u1", [1, 2, 3, 4, 5], weights=[1.0, 3.0, 0.5, 1.0, 2.0]), {})
    assert {r.model_version for r in first.results} == {0}
    # one sample per event with a history: (i1) -> i2, (i1, i2) -> i3, ...
    assert [(s.history, s.target) for s in first.samples][:2] == [
        (("i1",), "i2"),
        (("i1", "i2"), "i3"),
    ]
    trainer = TrainerService(training(), store, DIM, background=False)
    trainer.add(first.samples)
    assert trainer.step(now=1.0) is None  # 4 samples < N = 20: not due
    more = rec.recommend(events("u2", list(range(10, 35))), {})
    trainer.add(more.samples)
    report = trainer.step(now=2.0)
    assert report is not None and report.version == 1 and report.steps > 0
    assert latest_version(adapters.path) == 1
    assert version_of(store) == 1
    # The catalog is the published adapter's projection of the stored base vectors.
    published = load_adapter(version_dir(adapters.path, 1))
    items, base = catalog_items()
    want = published.item_vectors(
        [i.item_id for i in items], torch.from_numpy(base), ["shop"] * N_ITEMS
    )
    _, stored = store.lookup([i.item_id for i in items])
    got = np.stack([stored[i.item_id] for i in items])
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert not np.allclose(got, base / np.linalg.norm(base, axis=1, keepdims=True), atol=1e-3)

    # The server follows on its next batch; the user's state is recomputed at v1.
    nxt = rec.recommend(events("u1", [6], start=5), first.states)
    (result,) = nxt.results
    assert result.model_version == 1 and rec.model.version == 1
    state = nxt.states["u1"]
    assert state.version == 1 and state.history == ["i1", "i2", "i3", "i4", "i5", "i6"]
    # Recomputed with each event's weight (the state keeps them beside the history).
    assert state.weights == [1.0, 3.0, 0.5, 1.0, 2.0, 1.0]
    model = model_of(1, store.adapter(1), dim=DIM, recency=0.95)
    expected = model.initial_state()
    for item_id, weight in zip(state.history, state.weights, strict=True):
        expected = model.step(expected, stored[item_id], weight)
    unweighted = model.initial_state()
    for item_id in state.history:
        unweighted = model.step(unweighted, stored[item_id], 1.0)
    assert not np.allclose(unweighted, expected, atol=1e-4)  # the weights do count
    assert state.vector is not None
    np.testing.assert_allclose(state.vector, expected, atol=1e-5)
    query = model.readout(expected)
    scores = {i: float(stored[i] @ query) for i in stored if i not in state.history}
    best = sorted(scores, key=lambda i: -scores[i])[:5]
    assert [i for i, _ in result.items] == best


def test_versions_only_move_forward_and_a_restart_resumes(
    tmp_path: Path, store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    trainer = TrainerService(training(), store, DIM, background=False)
    trainer.add(rec.recommend(events("u", list(range(25))), {}).samples)
    assert trainer.step(now=1.0) is not None
    # never backwards: an older version (or the same again) leaves the catalog at 1
    assert store.publish(1, store.adapter(1) or {}) == 1
    assert version_of(store) == 1
    assert version_of(store) == 1
    store.close()

    # Restart: a new store opens the same data and resumes at the newest version.
    again = Catalog(StoreConfig(url=f"local:{tmp_path / 'qdrant'}"), DIM, adapters)
    assert version_of(again) == 1
    ids, _, serving = again.serving.columns()  # its matrices: what its store holds
    stored, base = again.store.get(ids), again.base.vectors(ids)
    assert len(ids) == N_ITEMS == again.count()
    for n, item_id in enumerate(ids):
        np.testing.assert_allclose(serving[n], stored[item_id].rec, atol=1e-5)
        np.testing.assert_allclose(base[item_id], stored[item_id].base, atol=1e-5)
    resumed = TrainerService(training(), again, DIM, background=False)
    assert resumed.version() == 1  # loaded, not retrained from scratch
    server = serve(again, adapters)
    out = server.recommend(events("w", list(range(15, 40))), {})
    assert {r.model_version for r in out.results} == {1}
    resumed.add(out.samples)
    report = resumed.step(now=5.0)
    assert report is not None and report.version == 2
    assert version_of(again) == 2
    again.close()


def test_zero_shot_mode_never_trains(store: Catalog, adapters: AdapterStoreConfig) -> None:
    rec = serve(store, adapters)
    trainer = TrainerService(training(mode="zero-shot"), store, DIM, background=False)
    trainer.add(rec.recommend(events("u", list(range(30))), {}).samples)
    assert trainer.step(now=1e9) is None
    assert trainer.train_now() == 0
    assert latest_version(adapters.path) is None and version_of(store) == 0


def test_train_now_publishes_what_was_received(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    trainer = TrainerService(training(), store, DIM, background=False)
    assert trainer.train_now() == 0  # nothing received yet: nothing to learn
    trainer.add(rec.recommend(events("u", [1, 2, 3]), {}).samples)  # below N
    assert trainer.train_now() == 1
    assert trainer.status()["rounds"] == 1


class CountingCatalog:
    """The catalog, counting the lookups a server makes."""

    def __init__(self, store: Catalog) -> None:
        self.store, self.lookups = store, 0

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, dict[str, Vector]]:
        self.lookups += 1
        return self.store.lookup(item_ids)

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        return self.store.search_at(requests)

    def adapter(self, version: int) -> AdapterFiles | None:
        return self.store.adapter(version)


class MovingCatalog(CountingCatalog):
    """A catalog that moves to version 1 between a batch's lookup and its search."""

    def __init__(self, store: Catalog, trainer: TrainerService) -> None:
        super().__init__(store)
        self.trainer, self.moved = trainer, False

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        if not self.moved:
            self.moved = True
            self.trainer.train_now()
        return self.store.search_at(requests)


def test_a_batch_that_sees_two_versions_is_recomputed_at_the_new_one(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    seed = serve(store, adapters)
    trainer = TrainerService(training(), store, DIM, background=False)
    trainer.add(seed.recommend(events("x", list(range(12))), {}).samples)
    moving = MovingCatalog(store, trainer)
    config = RecommendConfig(top_k=5, exact_search=True)
    rec = Recommender(config, moving, NoText(), dim=DIM)
    out = rec.recommend(events("u", [1, 2, 3]), {})
    # The first attempt read vectors at 0 but searched at 1: it is thrown away and the
    # whole batch is recomputed at 1 (user vectors and catalog of one version).
    assert moving.moved and version_of(store) == 1
    assert {r.model_version for r in out.results} == {1}
    assert out.states["u"].version == 1


def test_prune_keeps_the_newest_versions(tmp_path: Path) -> None:
    root = tmp_path / "a"
    for v in (1, 2, 3, 4, 5):
        version_dir(root, v).mkdir(parents=True)
        (version_dir(root, v) / CONFIG_NAME).write_text("{}")
    assert prune_versions(root, keep=2) == [1, 2, 3]
    assert sorted(p.name for p in root.iterdir()) == ["v000004", "v000005"]


def test_after_a_round_the_trainer_rests_until_its_share_of_the_time_is_kept(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    # max_share 1e-4: a round of D seconds (>= 1 ms here) rests 10,000 D (>= 10 s)
    trainer = TrainerService(training(max_share=1e-4), store, DIM, background=False)
    trainer.add(rec.recommend(events("u1", list(range(25))), {}).samples)
    assert trainer.step(now=1.0) is not None
    trainer.add(rec.recommend(events("u2", list(range(10, 35))), {}).samples)
    assert trainer.step(now=2.0) is None  # 24 new samples >= N = 20: due, but resting
    report = trainer.step(now=1e9)
    assert report is not None and report.samples_seen == 48


def test_the_rest_never_outlasts_the_time_trigger(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    # max_share 1e-6 alone would rest 1,000,000 D (>= 1,000 s); T = 30 s bounds it
    config = training(max_share=1e-6, train_every_seconds=30.0)
    trainer = TrainerService(config, store, DIM, background=False)
    trainer.add(rec.recommend(events("u1", list(range(25))), {}).samples)
    assert trainer.step(now=1.0) is not None
    trainer.add(rec.recommend(events("u2", list(range(10, 35))), {}).samples)
    assert trainer.step(now=2.0) is None
    assert trainer.step(now=1.0 + 30.0 + 100.0) is not None  # a round takes far under 100 s


def test_with_a_share_of_one_a_due_round_never_waits(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    rec = serve(store, adapters)
    trainer = TrainerService(training(max_share=1.0), store, DIM, background=False)
    trainer.add(rec.recommend(events("u1", list(range(25))), {}).samples)
    assert trainer.step(now=1.0) is not None
    trainer.add(rec.recommend(events("u2", list(range(10, 35))), {}).samples)
    assert trainer.step(now=1.0) is not None


def test_every_round_is_logged_and_only_accepted_candidates_are_published(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    from workers.adapters.rounds import read_rounds

    rec = serve(store, adapters)
    trainer = TrainerService(training(gate=True, gate_samples=10), store, DIM, background=False)
    for n in range(10):
        served = rec.recommend(events(f"u{n}", [(7 * k + n) % N_ITEMS for k in range(12)]), {})
        trainer.add(served.samples)
        trainer.step(now=float(n))
    rounds = read_rounds(adapters.path)
    status = trainer.status()
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    assert len(rounds) == status["rounds"] + status["rejected"] >= 4
    accepted = [r for r in rounds if r["accepted"]]
    assert [r["version"] for r in accepted] == list(range(1, len(accepted) + 1))
    assert version_of(store) == status["version"] == len(accepted)
    for r in rounds:  # both scores on the same 10 held-out samples, logged either way
        assert r["gate_samples"] == 10 and r["candidate_score"] is not None
        # ... and never below the frozen model's score on them (the gate's floor)
        floor = r["frozen_score"] if r.get("frozen_score") is not None else -1.0
        wins = r["candidate_score"] > r["live_score"]
        assert r["accepted"] == (wins and r["candidate_score"] >= floor), r


def test_a_server_at_the_new_version_reads_a_stale_user_s_history_in_its_one_lookup(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    counting = CountingCatalog(store)
    rec = Recommender(RecommendConfig(top_k=5, exact_search=True), counting, NoText(), dim=DIM)
    u1 = rec.recommend(events("u1", [1, 2, 3]), {})
    u2 = rec.recommend(events("u2", [4, 5, 6, 7], weights=[1.0, 2.0, 0.5, 1.0]), {})
    trainer = TrainerService(training(), store, DIM, background=False)
    trainer.add(rec.recommend(events("x", list(range(10, 35))), {}).samples)
    assert trainer.train_now() == 1
    counting.lookups = 0
    rec.recommend(events("u1", [8], start=3), u1.states)  # finds the catalog moved
    assert rec.model.version == 1 and counting.lookups == 2  # the history: a 2nd call
    counting.lookups = 0
    out = rec.recommend(events("u2", [9], start=4), u2.states)
    assert counting.lookups == 1  # a state of another version: its history came along
    state = out.states["u2"]
    assert state.version == 1 and state.history == ["i4", "i5", "i6", "i7", "i9"]
    model = model_of(1, store.adapter(1), dim=DIM, recency=0.95)
    _, stored = store.lookup(state.history)
    expected = model.initial_state()
    for item_id, weight in zip(state.history, state.weights, strict=True):
        expected = model.step(expected, stored[item_id], weight)
    assert state.vector is not None
    np.testing.assert_allclose(state.vector, expected, atol=1e-5)


def test_a_round_that_trains_nothing_is_logged_apart_from_the_gate_s_decisions(
    store: Catalog, adapters: AdapterStoreConfig
) -> None:
    """Every new sample held out for the gate: the round trains nothing, publishes
    nothing, and still shows in the log (the eval's replay waits for every due round),
    though not among the gate's decisions."""
    from workers.adapters.rounds import read_rounds

    rec = serve(store, adapters)
    trainer = TrainerService(
        training(gate=True, gate_samples=100, train_every_samples=5), store, DIM, background=False
    )
    served = rec.recommend(events("u0", [k % N_ITEMS for k in range(12)]), {})
    trainer.add(served.samples)
    assert trainer.step(now=0.0) is not None
    everything = read_rounds(adapters.path, empty=True)
    assert [(r["round"], r["steps"], r["accepted"]) for r in everything] == [(1, 0, False)]
    assert everything[0]["samples_seen"] == len(served.samples) == 11
    assert read_rounds(adapters.path) == []
    assert trainer.status()["empty_rounds"] == 1 and version_of(store) == 0
