"""The brute-force reference and the data of the VectorStore tests.

Each backend is compared with a brute-force cosine reference on small deterministic
random data, in the style of qdrant-client's congruence tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workers.store import Hit, ItemPoint, SearchRequest, VectorStore, open_store

DIM = 16
Vec = npt.NDArray[np.float32]


class Opener:
    """Opens stores of one kind at one URL and closes them all at teardown."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.opened: list[VectorStore] = []

    def __call__(self, dim: int = DIM) -> VectorStore:
        store = open_store(self.url, dim=dim)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def make_items(
    n: int, *, seed: int = 0, scenarios: Sequence[str] = ("a", "b"), prefix: str = "item"
) -> list[ItemPoint]:
    """Items with independent random (non-normalised) base and rec vectors."""
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal((n, DIM)) * 3.0).astype(np.float32)
    rec = (rng.standard_normal((n, DIM)) * 3.0).astype(np.float32)
    return [
        ItemPoint(f"{prefix}-{i}", scenarios[i % len(scenarios)], f"text {i}", base[i], rec[i])
        for i in range(n)
    ]


def unit(v: Vec) -> Vec:
    return (v / np.linalg.norm(v)).astype(np.float32)


def brute_force(
    items: Sequence[ItemPoint],
    query: Vec,
    k: int,
    *,
    using: str = "rec",
    scenario: str | None = None,
    exclude: Sequence[str] = (),
) -> list[tuple[str, float]]:
    """Exact cosine top-k over ``items``: the reference every backend must match."""
    q = unit(query)
    scored = [
        (item.item_id, float(unit(getattr(item, using)) @ q))
        for item in items
        if (scenario is None or item.scenario == scenario) and item.item_id not in exclude
    ]
    return sorted(scored, key=lambda pair: -pair[1])[:k]


def assert_matches(hits: list[Hit], expected: list[tuple[str, float]]) -> None:
    assert [h.item_id for h in hits] == [item_id for item_id, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)


def search_one(store: VectorStore, request: SearchRequest) -> list[Hit]:
    (hits,) = store.search([request])
    return hits
