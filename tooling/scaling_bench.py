"""Throughput with 1, 2 and 3 worker processes on a Ray cluster of as many nodes.

    python -m tooling.scaling_bench [--dataset ../shared/data/ml-100k] [--events 10000]

For each N: a Ray head and N - 1 more nodes (`ray start`, each offering one "serving"
slot), N ``streamrec worker`` processes joined to it (6 partitions; each worker's
recommender on a serving slot, so on its own node; one shared catalog writer, encoder
and trainer), the catalog, then a firehose of the dataset's events. Reported per N: the
sustained events/s, its ratio to N = 1, and the CPU milliseconds per event of each kind
of process (workers, each actor class, the broker), from which the serial part (the
cluster-wide actors and the broker) is read: the broker's share of the event path's
CPU (`tooling.scaling_bound`), and the bound by Amdahl's law it implies for 8 and 32
workers. On a machine with fewer cores than processes the absolute speed-up is capped
by the cores: read the ratios and the CPU split, not the rates.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from tooling.bench import _catalog, _replay
from tooling.bench_probes import cpu_by_process, cpu_ms_per_event
from tooling.datasets import load
from tooling.local import RayNode, local_stack, ray_head, ray_node
from tooling.scaling_bound import amdahl, serial_fraction

PARTITIONS = 6
#: The cluster sizes whose bound each row reports (the issue's 8 and 32 workers).
BOUND_AT = (8, 32)
SERVING = {"serving": 1.0}


def measure(workers: int, dataset: Path, events: int, root: Path) -> dict[str, Any]:
    data = load(dataset)
    with ray_head(num_cpus=2, log_path=root / "head.log", resources=SERVING) as head:
        nodes: list[RayNode] = []
        try:
            for n in range(workers - 1):
                nodes.append(ray_node(head.address, 1, SERVING, log_path=root / f"node-{n}.log"))
            env = {
                "STREAMREC_RAY__ADDRESS": head.address,
                "STREAMREC_RECOMMEND__RESOURCES": json.dumps(SERVING),
            }
            with local_stack(partitions=PARTITIONS, env=env, workdir=root / "stack") as stack:
                stack.start_workers(range(workers))
                _catalog(stack, data.items)
                pids = [w.pid for w in stack.workers]
                roots = [head.process.pid, *(node.process.pid for node in nodes)]
                before = cpu_by_process(pids, stack.broker.process.pid, roots)
                burst = _replay(stack, data.events[:events], rate=None)
                after = cpu_by_process(pids, stack.broker.process.pid, roots)
                cpu = cpu_ms_per_event(before, after, burst.events)
        finally:
            for node in nodes:
                node.stop()
    return {"workers": workers, "events_per_s": burst.events_per_s, "cpu_ms_per_event": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    rows = []
    for n in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"streamrec-scaling-{n}-") as tmp:
            rows.append(measure(n, args.dataset, args.events, Path(tmp)))
        row = rows[-1]
        row["vs_one"] = round(row["events_per_s"] / rows[0]["events_per_s"], 2)
        serial = serial_fraction(row["cpu_ms_per_event"])
        row["serial_fraction"] = round(serial, 4)
        row["amdahl_bound"] = {str(n): round(amdahl(serial, n), 1) for n in BOUND_AT}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
