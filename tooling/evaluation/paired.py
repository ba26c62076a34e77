"""Paired comparisons of two runs scored on the same units (users, or a stream's rounds).

Two settings ranked on the same validation users differ by much less noise than their
two means suggest: each user's difference removes what is hard or easy about that user.
So a comparison is the mean per-unit difference and its standard error over the units,
each unit's difference first averaged over the seeds run. Each dataset gives its own z
(`PairedDifference.z`); the study's decision rule combines them across datasets by
Stouffer's sum, by hand (docs/ONLINE-TRAINING-STUDY.md, session 40): nothing here does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tooling.evaluation.metrics import ndcg_of


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - base`` over ``n`` units: means, their difference and its standard error."""

    n: int
    base: float
    candidate: float
    diff: float
    se: float

    @property
    def z(self) -> float:
        """The difference in standard errors (0 when both runs agree on every unit)."""
        if self.se > 0:
            return self.diff / self.se
        return 0.0 if self.diff == 0 else math.copysign(math.inf, self.diff)


def ndcg_gains(hits: Mapping[str, int], users: Sequence[str]) -> npt.NDArray[np.float64]:
    """Each user's NDCG@K of one target, from the 0-based ranks of the hits (a user
    without a hit scores 0), in the order of ``users``."""
    return np.array([ndcg_of(hits.get(u)) for u in users], dtype=np.float64)


def paired_difference(
    base: Sequence[npt.ArrayLike], candidate: Sequence[npt.ArrayLike]
) -> PairedDifference:
    """Compare per-unit scores: ``base`` and ``candidate`` hold one array per seed run
    (the same units in the same order); each unit's scores are averaged over its seeds."""
    if not base or len(base) != len(candidate):
        raise ValueError("give each side the same number (>= 1) of seed runs")
    b = np.mean([np.asarray(x, dtype=np.float64) for x in base], axis=0)
    c = np.mean([np.asarray(x, dtype=np.float64) for x in candidate], axis=0)
    if b.shape != c.shape or b.ndim != 1 or len(b) < 2:
        raise ValueError(f"need the same >= 2 units on both sides, got {b.shape} and {c.shape}")
    d = c - b
    return PairedDifference(
        n=len(d),
        base=float(b.mean()),
        candidate=float(c.mean()),
        diff=float(d.mean()),
        se=float(d.std(ddof=1) / math.sqrt(len(d))),
    )
