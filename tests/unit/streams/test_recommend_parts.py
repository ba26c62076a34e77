"""The recommend call split into its parts from the two processes' clocks."""

from __future__ import annotations

from streams import metrics


def _sum_and_count(part: str) -> tuple[float, float]:
    samples = {
        s.name: s.value
        for family in metrics.RECOMMEND_PARTS.collect()
        for s in family.samples
        if s.labels.get("part") == part and not s.name.endswith("_bucket")
    }
    return (
        samples.get("streamrec_recommend_part_seconds_sum", 0.0),
        samples.get("streamrec_recommend_part_seconds_count", 0.0),
    )


def test_a_call_is_split_into_the_way_there_the_work_and_the_way_back() -> None:
    before = {part: _sum_and_count(part) for part in ("there", "work", "back")}
    metrics.observe_recommend_parts(100.0, (100.25, 100.75), 101.0)
    for part, seconds in (("there", 0.25), ("work", 0.5), ("back", 0.25)):
        total, count = _sum_and_count(part)
        assert count == before[part][1] + 1
        assert abs(total - before[part][0] - seconds) < 1e-9


def test_a_recommender_that_gave_no_clock_is_not_counted() -> None:
    before = {part: _sum_and_count(part) for part in ("there", "work", "back")}
    metrics.observe_recommend_parts(100.0, (0.0, 0.0), 101.0)
    assert {part: _sum_and_count(part) for part in ("there", "work", "back")} == before
