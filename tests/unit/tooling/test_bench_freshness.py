"""The bench's new-item probes (originals no replayed event named; a probe that timed
out reported as such instead of ending the bench) and its per-stage means."""

from __future__ import annotations

from io import StringIO
from itertools import pairwise

from rich.console import Console

from tooling import bench, bench_table
from tooling.datasets import interleaved
from tooling.local import Scraped


def test_picks_are_items_the_replay_never_named() -> None:
    items = [{"item_id": f"i{n}", "text": f"item {n}"} for n in range(300)]
    replayed = [{"item_id": f"i{n}", "user_id": "u"} for n in range(0, 300, 2)]
    picks = bench._unseen_picks(items, replayed)
    assert len(picks) == 5
    assert all(int(p["item_id"][1:]) % 2 == 1 for p in picks)
    assert len({p["item_id"] for p in picks}) == 5


def test_every_item_named_falls_back_to_the_whole_catalog() -> None:
    items = [{"item_id": f"i{n}"} for n in range(10)]
    assert len(bench._unseen_picks(items, [{"item_id": f"i{n}"} for n in range(10)])) == 5


def test_a_missed_probe_is_printed_not_fatal() -> None:
    phase = {"events_per_s": 100.0, "events": 10, "latency_ms": {"p50": 1, "p95": 2, "p99": 3}}
    results = {
        "machine": "test",
        "catalog_items_per_s": 10.0,
        "firehose": {**phase, "cpu_ms_per_event": {}},
        "firehose_training_off": {**phase, "cpu_ms_per_event": {}},
        "training_on_vs_off": 1.0,
        "firehose_interleaved_training_off": {
            **phase,
            "events_per_s": 77.0,
            "cpu_ms_per_event": {"worker": 0.5},
        },
        "paced": {**phase, "target_rate": 50.0},
        "paced_at_rate": {
            **phase,
            "target_rate": 1000.0,
            "stages_ms": {"read": 9.0, "serve": 8.5},
            "training_rounds": 3,
            "rounds_split": {
                "share_during": 0.25,
                "during_ms": {"p50": 70.0, "p95": 140.0, "p99": 180.0},
                "between_ms": {},  # every event met a round: printed as "-"
            },
        },
        "paced_training_off": {
            **phase,
            "target_rate": 1000.0,
            "stages_ms": {"read": 4.0, "serve": 6.5},
            "training_rounds": 0,
        },
        "new_item_freshness_s": [0.2, None, 0.4],
        "rss_mb": {"worker": 100.0, "actors": {}},
        "passthrough_events_per_s": 1000.0,
        "pipeline_vs_passthrough": 0.1,
    }
    out = StringIO()
    bench_table.print_results(Console(file=out, width=200), results)
    assert "median 0.40 s, max 0.40 s; 1 not within 60 s" in out.getvalue()
    assert "training off, paced at 1000/s (100.0/s reached): p50/p95/p99" in out.getvalue()
    assert "read 4.0, serve 6.5" in out.getvalue()
    assert "training on, paced at 1000/s (100.0/s reached): p50/p95/p99" in out.getvalue()
    assert "3 training rounds" in out.getvalue() and "read 9.0, serve 8.5" in out.getvalue()
    assert "users interleaved, training off" in out.getvalue() and "77.0 events/s" in out.getvalue()
    assert "0.50 in all: worker 0.50" in out.getvalue()
    assert "25% of the events" in out.getvalue() and "70 / 140 / 180 ms | -" in out.getvalue()
    without = StringIO()  # a dataset with too few events left for it
    bench_table.print_results(
        Console(file=without, width=200), {**results, "firehose_interleaved_training_off": None}
    )
    assert "interleaved" not in without.getvalue()


def test_interleaved_events_are_the_same_events_in_a_seeded_random_order() -> None:
    events = [{"user_id": f"u{n // 10}", "item_id": f"i{n}"} for n in range(200)]
    mixed = interleaved(events)
    assert sorted(e["item_id"] for e in mixed) == sorted(e["item_id"] for e in events)
    assert mixed == interleaved(events) and mixed != events
    runs = sum(a["user_id"] != b["user_id"] for a, b in pairwise(mixed))
    assert runs > 150  # users interleave: 19 changes of user in time order


def test_stage_means_come_from_the_metrics_moved_between_two_scrapes() -> None:
    def scraped(read_s: float, read_n: float, serve_s: float, serve_n: float) -> Scraped:
        return {
            ("streamrec_stage_seconds_total", (("stage", "read"),)): read_s,
            ("streamrec_stage_events_total", (("stage", "read"),)): read_n,
            ("streamrec_stage_seconds_total", (("stage", "serve"),)): serve_s,
            ("streamrec_stage_events_total", (("stage", "serve"),)): serve_n,
        }

    stages = bench._stages_ms(scraped(5.0, 100, 1.0, 100), scraped(6.0, 300, 3.0, 300))
    assert stages["read"] == 5.0 and stages["serve"] == 10.0  # 1 s over 200, 2 s over 200
    assert stages["produce"] == 0.0  # no series yet: nothing timed


def test_ray_call_means_cover_the_calls_made_between_two_scrapes() -> None:
    def scraped(calls: dict[str, tuple[float, float]]) -> Scraped:
        out: Scraped = {}
        for call, (seconds, count) in calls.items():
            out[("streamrec_ray_call_seconds_sum", (("call", call),))] = seconds
            out[("streamrec_ray_call_seconds_count", (("call", call),))] = count
        return out

    before = scraped({"recommend": (1.0, 100), "trainer add": (0.5, 10)})
    after = scraped({"recommend": (1.5, 200), "trainer add": (0.5, 10), "forget": (0.2, 1)})
    # recommend: 0.5 s over 100 calls; trainer add: no call meanwhile; forget: new series
    means = bench._means_ms(before, after, "streamrec_ray_call_seconds", "call")
    assert means == {"recommend": 5.0, "forget": 200.0}
