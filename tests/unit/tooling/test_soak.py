"""The soak's verdict on an RSS series, and its event stream (no process started)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tooling.soak import SoakOptions, flatness, looped_events, summarize


def test_a_series_that_settles_after_warm_up_is_flat() -> None:
    # Loading the model and the catalog (minutes 0-1), then +-5 % around 1000 MB.
    verdict = flatness([300.0, 900.0, 1000.0, 1040.0, 960.0, 1049.0, 1010.0], warmup=2)
    assert verdict.flat and verdict.baseline_mb == 1000.0
    assert (verdict.low_mb, verdict.high_mb, verdict.drift) == (960.0, 1049.0, 0.01)


def test_growth_past_the_tolerance_is_not_flat_whenever_it_happens() -> None:
    growing = [500.0, 1000.0, 1030.0, 1060.0, 1090.0, 1120.0]  # +3 % a minute, no plateau
    assert not flatness(growing, warmup=1).flat
    assert flatness(growing[:4], warmup=1).flat  # 3 minutes of it stay within 10 %
    spike = [1000.0, 1000.0, 1150.0, 1000.0]  # back down, but it went over
    assert not flatness(spike, warmup=1).flat
    shrunk = [1000.0, 1000.0, 850.0]  # a drop past 10 % is not flat either
    assert not flatness(shrunk, warmup=1).flat


def test_the_warm_up_is_not_judged_and_a_vanished_process_is_not_flat() -> None:
    assert flatness([100.0, 5000.0, 5100.0], warmup=1).flat  # minute 0 is before it
    assert not flatness([100.0, 5000.0, 5100.0], warmup=0).flat
    gone = flatness([800.0, 800.0, 0.0], warmup=1)  # the process died: 0 MB
    assert not gone.flat and gone.low_mb == 0.0
    with pytest.raises(ValueError, match="warm-up 3"):
        flatness([1.0, 1.0, 1.0], warmup=3)


def test_events_loop_with_fresh_ids_until_stopped() -> None:
    stop = threading.Event()
    events = [{"user_id": "u", "item_id": f"i{n}", "event_id": "same", "ts": 1.0} for n in range(3)]
    stream = looped_events(events, stop)
    first = [next(stream) for _ in range(7)]
    assert [e["item_id"] for e in first] == ["i0", "i1", "i2", "i0", "i1", "i2", "i0"]
    assert len({e["event_id"] for e in first}) == 7 and all(e["ts"] > 1.0 for e in first)
    assert events[0]["event_id"] == "same"  # the dataset's records are not changed
    stop.set()
    assert list(stream) == []


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="shorter than the run"):
        SoakOptions(dataset=Path("."), minutes=3, warmup=3)
    with pytest.raises(ValueError, match="rate > 0"):
        SoakOptions(dataset=Path("."), rate=0)


def test_results_judge_streamrec_processes_and_measure_the_broker_s_growth() -> None:
    def sample(minute: int, sent: int, worker: float, broker: float) -> dict[str, object]:
        rss = {"worker": worker, "broker": broker}
        return {"minute": minute, "elapsed_s": 60.0 * minute, "events_sent": sent, "rss_mb": rss}

    samples = [sample(0, 0, 300, 20), sample(1, 12_000, 330, 50), sample(2, 24_000, 332, 80)]
    options = SoakOptions(dataset=Path("."), minutes=2, warmup=1)
    results = summarize(options, "ml-100k", samples)  # type: ignore[arg-type]
    assert results["verdict"]["broker"]["flat"] is False  # judged, and reported as grown
    assert results["streamrec_flat"] is True  # ... but only streamrec processes count
    assert results["broker_mb_per_1k_events"] == 2.5  # 30 MB over 12,000 events
    assert results["achieved_rate"] == 200.0
