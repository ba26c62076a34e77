"""What one evaluation measured, per model, per stream replay and per transfer run.

In: a :class:`~tooling.evaluation.split.Split` and each model's top-K lists (user ->
item ids, history excluded) for the test and validation targets. :func:`score_model`
turns them into a :class:`ModelResult`: full-ranking metrics on both phases and on the
cold-start slices of ``slices.py``. A :class:`StreamRun` holds one replay of the stream
(its prequential result and the ``latency_ms`` of every served list); a
:class:`Transfer` holds scenario B's test metrics when its model starts from scenario
A's shared part and when it starts from scratch. Plain frozen data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tooling.evaluation.metrics import RankingMetrics, evaluate
from tooling.evaluation.online import PrequentialResult
from tooling.evaluation.slices import COLD_START_SLICES, SliceSpec, evaluate_slices
from tooling.evaluation.split import ItemId, Split, UserId


@dataclass(frozen=True)
class ModelResult:
    """One model's metrics: ``test`` and, when measured, ``valid``; cold-start slices
    per phase (slice name -> metrics, ``users`` = slice size)."""

    name: str
    test: RankingMetrics
    valid: RankingMetrics | None = None
    test_slices: Mapping[str, RankingMetrics] = field(default_factory=dict)
    valid_slices: Mapping[str, RankingMetrics] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamRun:
    """One replay of the stream: ``name`` (e.g. "streamrec online"), its prequential
    result, the ``latency_ms`` of each recommendation it served (may be empty) and the
    trainer's ``rounds`` (`workers.adapters.rounds`: each gate decision; may be empty)."""

    name: str
    prequential: PrequentialResult
    latencies_ms: Sequence[float] = ()
    rounds: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Transfer:
    """Scenario ``target``'s (B) test metrics from scenario ``source``'s (A) shared
    adapter part vs from scratch, on the same split of B."""

    source: str
    target: str
    from_shared: RankingMetrics
    from_scratch: RankingMetrics


def score_model(
    name: str,
    split: Split,
    test: Mapping[UserId, Sequence[ItemId]],
    valid: Mapping[UserId, Sequence[ItemId]] | None = None,
    k: int = 10,
    slices: Sequence[SliceSpec] = COLD_START_SLICES,
    catalog_size: int | None = None,
) -> ModelResult:
    """Metrics@``k`` of ``test`` lists against ``split.test`` and of ``valid`` lists
    against ``split.valid`` (skipped when None), each also per slice of ``slices``.
    ``catalog_size`` (coverage's denominator) defaults to ``len(split.items)``."""
    size = len(split.items) if catalog_size is None else catalog_size
    if valid is None:
        return ModelResult(
            name,
            evaluate(test, split.test, k, size),
            test_slices=evaluate_slices(split, test, "test", k, slices, size),
        )
    return ModelResult(
        name,
        evaluate(test, split.test, k, size),
        evaluate(valid, split.valid, k, size),
        test_slices=evaluate_slices(split, test, "test", k, slices, size),
        valid_slices=evaluate_slices(split, valid, "valid", k, slices, size),
    )
