"""The recommendation written straight from its fields is the contract's record."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.schemas import Recommendation, ScoredItem, dumps, recommendation_json

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # no lone surrogates
FINITE = st.floats(allow_nan=False, allow_infinity=False)


@given(
    user_id=TEXT,
    event_id=TEXT,
    scenario=TEXT,
    items=st.lists(st.tuples(TEXT, FINITE), max_size=12),
    model_version=st.integers(min_value=0, max_value=2**40),
    ts=FINITE,
    latency_ms=st.floats(min_value=0.0, max_value=1e9),
)
def test_it_reads_back_as_the_record_the_models_write(
    user_id: str,
    event_id: str,
    scenario: str,
    items: list[tuple[str, float]],
    model_version: int,
    ts: float,
    latency_ms: float,
) -> None:
    fields = dict(user_id=user_id, event_id=event_id, scenario=scenario)
    fast = recommendation_json(
        **fields, items=items, model_version=model_version, ts=ts, latency_ms=latency_ms
    )
    model = Recommendation(
        **fields,
        items=[ScoredItem(item_id=i, score=s) for i, s in items],
        model_version=model_version,
        ts=ts,
        latency_ms=latency_ms,
    )
    assert Recommendation.model_validate_json(fast) == model
    assert json.loads(fast) == json.loads(dumps(model))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_score_that_is_not_finite_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        recommendation_json(
            user_id="u",
            event_id="e",
            scenario="default",
            items=[("a", 0.5), ("b", bad)],
            model_version=1,
            ts=1.0,
            latency_ms=2.0,
        )


def test_text_is_written_as_utf8_not_escaped() -> None:
    raw = recommendation_json(
        user_id="ü",
        event_id='e"1',
        scenario="films",
        items=[("é", 0.25)],
        model_version=0,
        ts=1.5,
        latency_ms=0.0,
    )
    assert "ü".encode() in raw
    assert json.loads(raw)["event_id"] == 'e"1'
