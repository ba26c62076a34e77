"""The table `streamrec bench` prints of its results (`tooling.bench.run_bench`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tooling.evaluation.latency import PERCENTILES_NOTE
from tooling.round_split import BUSY_CORES


def print_results(console: Console, r: dict[str, Any]) -> None:
    """Print ``r`` (`tooling.bench.run_bench`'s results) as one table."""
    table = Table(
        title=f"streamrec bench ({r['machine']})",
        caption=f"latencies: event -> recommendation produced, {PERCENTILES_NOTE}",
        show_header=False,
    )
    table.add_row("catalog encode+index", f"{r['catalog_items_per_s']} items/s")
    f, p = r["firehose"], r["paced"]
    off = r["firehose_training_off"]
    table.add_row("firehose sustained", f"{f['events_per_s']} events/s ({f['events']} events)")
    table.add_row("firehose latency p50/p95/p99", _ms(f["latency_ms"]))
    table.add_row("CPU per event, ms (firehose)", _cpu(f["cpu_ms_per_event"]))
    table.add_row(
        "firehose, training off",
        f"{off['events_per_s']} events/s (on/off {r['training_on_vs_off']:.2f})",
    )
    table.add_row("CPU per event, ms (training off)", _cpu(off["cpu_ms_per_event"]))
    mixed = r["firehose_interleaved_training_off"]
    if mixed is not None:
        table.add_row(
            "firehose, users interleaved, training off",
            f"{mixed['events_per_s']} events/s ({mixed['events']} events)",
        )
        table.add_row("CPU per event, ms (interleaved)", _cpu(mixed["cpu_ms_per_event"]))
    table.add_row(f"paced at {p['target_rate']}/s latency p50/p95/p99", _ms(p["latency_ms"]))
    for name, po in (
        ("training on", r["paced_at_rate"]),
        ("training off", r["paced_training_off"]),
    ):
        table.add_row(
            f"{name}, paced at {po['target_rate']:.0f}/s ({po['events_per_s']}/s reached): "
            "p50/p95/p99",
            _ms(po["latency_ms"]),
        )
        table.add_row(
            f"  mean ms per event by stage; {po['training_rounds']} training rounds",
            ", ".join(f"{stage} {ms:.1f}" for stage, ms in po["stages_ms"].items()),
        )
        table.add_row(
            "  mean ms per Ray call",
            ", ".join(f"{call} {ms:.1f}" for call, ms in po.get("ray_call_ms", {}).items()),
        )
        table.add_row(
            "  the recommend call in parts, mean ms",
            ", ".join(f"{p} {ms:.1f}" for p, ms in po.get("recommend_parts_ms", {}).items()),
        )
        rounds = po.get("rounds_split")
        if rounds:
            table.add_row(
                f"  while a round ran (trainer > {BUSY_CORES} core; "
                f"{rounds['share_during']:.0%} of the events) / between rounds: p50/p95/p99",
                " | ".join(
                    _ms(lat) if lat else "-" for lat in (rounds["during_ms"], rounds["between_ms"])
                ),
            )
    probes = r["new_item_freshness_s"]
    fresh = sorted(f for f in probes if f is not None)
    missed = len(probes) - len(fresh)
    table.add_row(
        f"new item recommendable after ({len(probes)} probes)",
        (f"median {fresh[len(fresh) // 2]:.2f} s, max {fresh[-1]:.2f} s" if fresh else "-")
        + (f"; {missed} not within 60 s" if missed else ""),
    )
    rss = r["rss_mb"]
    actors = ", ".join(f"{k} {v:.0f}" for k, v in rss["actors"].items())
    table.add_row("RSS, MB (after the firehose)", f"worker {rss['worker']:.0f}; {actors}")
    table.add_row("passthrough ceiling", f"{r['passthrough_events_per_s']} events/s")
    table.add_row("pipeline / ceiling", f"{r['pipeline_vs_passthrough']:.2%}")
    console.print(table)


def _cpu(by_process: dict[str, float]) -> str:
    total = sum(by_process.values())
    return f"{total:.2f} in all: " + ", ".join(f"{k} {v:.2f}" for k, v in by_process.items())


def _ms(lat: dict[str, float]) -> str:
    return f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} ms"
