"""`build_batch` / `contrastive_loss`: a row's own history left out of its candidates."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from workers.adapters import AdapterConfig, RecAdapter
from workers.training import Sample
from workers.training.batch import build_batch, contrastive_loss
from workers.training.catalog import BaseVectors

DIM = 8


def _cache(n: int) -> BaseVectors:
    rng = np.random.default_rng(0)
    cache = BaseVectors(DIM)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    cache.add({f"i{k}": vectors[k] for k in range(n)}, {f"i{k}": "s" for k in range(n)})
    return cache


def test_seen_marks_exactly_the_rows_history_among_the_candidates() -> None:
    cache = _cache(10)
    samples = [
        Sample(("i0", "i1"), "i2", "s"),  # i1 is row 1's target: a candidate
        Sample(("i3", "i2"), "i1", "s"),  # i2 is row 0's target; i3 is a sampled negative
        Sample(("i1", "i4"), "i4", "s"),  # a re-purchase: its target stays rankable
    ]
    negatives = np.array([cache.rows["i3"], cache.rows["i5"]], dtype=np.int64)
    batch = build_batch(samples, cache, 5, negatives, exclude_history=True)
    assert batch is not None and batch.seen is not None
    cand_rows = batch.rows[batch.cands]
    seen_ids = [
        {cache.ids[int(cand_rows[c])] for c in np.nonzero(batch.seen[r])[0]} for r in range(3)
    ]
    assert seen_ids == [{"i1"}, {"i3", "i2"}, {"i1"}]
    # Every row's own target is a candidate and never masked.
    assert not batch.seen[np.arange(3), batch.label].any()
    assert build_batch(samples, cache, 5, negatives).seen is None  # type: ignore[union-attr]


def test_the_masked_loss_ignores_history_candidates_and_only_them() -> None:
    cache = _cache(12)
    torch.manual_seed(0)
    adapter = RecAdapter(AdapterConfig(dim=DIM, max_items=0, dropout=0.0)).eval()
    samples = [Sample(("i0", "i1", "i2"), "i3", "s")]
    negatives = np.array([cache.rows[i] for i in ("i1", "i2", "i7", "i8")], dtype=np.int64)
    masked = build_batch(samples, cache, 5, negatives, exclude_history=True)
    plain = build_batch(samples, cache, 5, negatives)
    without = build_batch(
        samples, cache, 5, np.array([cache.rows[i] for i in ("i7", "i8")], dtype=np.int64)
    )
    assert masked is not None and plain is not None and without is not None
    with torch.no_grad():
        loss_masked = float(contrastive_loss(adapter, masked, cache))
        loss_plain = float(contrastive_loss(adapter, plain, cache))
        loss_without = float(contrastive_loss(adapter, without, cache))
    assert math.isfinite(loss_masked)
    # Masking the history negatives is the same as never sampling them ...
    assert math.isclose(loss_masked, loss_without, rel_tol=1e-5)
    # ... and they did count without the mask (each user's history scores high).
    assert loss_plain > loss_masked + 1e-3


def test_logq_is_the_log_of_each_candidates_expected_count_in_a_step() -> None:
    from tests.unit.training.toy import DIM as TOY_DIM
    from tests.unit.training.toy import trainer

    t = trainer(batch_size=4, negatives=10, catalog_negatives=0.2, logq_correction=True)
    vectors = {f"i{k}": np.full(TOY_DIM, k + 1.0, dtype=np.float32) for k in range(10)}
    t.add_base_vectors(vectors, {k: "default" for k in vectors})
    # Targets: i1 three times, i2 once; named items: i0, i1, i2, i3 (4 of 10 cached).
    t.add([Sample(("i0",), "i1"), Sample(("i3",), "i1"), Sample(("i0",), "i1")])
    t.add([Sample(("i0",), "i2")])
    t._negatives(np.random.default_rng(0))  # what a step does first: the named rows
    rows = np.array([t.vectors.rows[i] for i in ("i1", "i2", "i3", "i9")], dtype=np.int64)
    got = np.exp(t._log_expected(rows))
    wide, named = 2 / 10, 8 / 4  # 2 of 10 negatives from all 10 items, 8 from the 4 named
    want = [4 * 3 / 4 + wide + named, 4 * 1 / 4 + wide + named, wide + named, wide]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_the_logq_loss_subtracts_it_from_the_scaled_logits() -> None:
    cache = _cache(6)
    torch.manual_seed(0)
    adapter = RecAdapter(AdapterConfig(dim=DIM, max_items=0, dropout=0.0)).eval()
    samples = [Sample(("i0",), "i1", "s"), Sample(("i2",), "i3", "s")]
    batch = build_batch(samples, cache, 5, np.array([cache.rows["i4"]], dtype=np.int64))
    assert batch is not None
    shift = np.array([0.0, 2.0, -1.0], dtype=np.float32)
    with torch.no_grad():
        got = float(contrastive_loss(adapter, replace(batch, logq=shift), cache))
        users = adapter.user_from_items(
            adapter.item_vectors(cache.ids, torch.from_numpy(cache.matrix), cache.scenarios)[
                torch.from_numpy(batch.rows[batch.history])
            ],
            torch.from_numpy(batch.mask),
        )
        rec = adapter.item_vectors(cache.ids, torch.from_numpy(cache.matrix), cache.scenarios)
        logits = users @ rec[torch.from_numpy(batch.rows[batch.cands])].T
        logits = logits / adapter.config.temperature - torch.from_numpy(shift)
        want = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(batch.label)))
    assert math.isclose(got, want, rel_tol=1e-5)
