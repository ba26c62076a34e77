"""Online-training study: replay a dataset's stream, train while serving, score LOO.

    python -m tooling.simulate_online --run default zero-shot ...   # append results
    python -m tooling.simulate_online --data ../shared/data/amazon-beauty --run default
    python -m tooling.simulate_online --report docs/ONLINE-TRAINING-STUDY.md
    python -m tooling.simulate_online --data ... --compare default,default-seed1 b,b-seed1

Each named configuration is replayed over the leave-one-out training events in time
order through `tooling.simulate.simulate` (serving + training, hot swaps),
then scored on valid and test with the final adapter. MiniLM base vectors are
computed once and cached under /tmp. Results go to a JSON-lines file (one row per run).
``--compare`` reads two runs' rows (names joined by commas: their seeds) and prints the
paired differences: per validation user, and per round of the stream (the served
version's NDCG@10 on each round's held-out samples).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tooling.datasets import load, sample_users
from tooling.evaluation import (
    SliceSpec,
    Split,
    equal_windows,
    evaluate,
    item_knn,
    leave_one_out,
    most_popular,
    ndcg_gains,
    paired_difference,
    rank_of,
    slice_targets,
)
from tooling.simulate import leave_one_out_lists, simulate
from workers.adapters import RecAdapter, load_adapter, save_adapter
from workers.training import TrainingConfig

DATA = Path("/work/shared/data/ml-100k")
STUDY = Path("/tmp/streamrec_study")
# Test targets whose item had fewer training interactions than ``below``: the cold
# slice, and a larger, less noisy slice of rarely seen items.
COLD = SliceSpec("cold<5", "item", 5)
RARE = SliceSpec("rare<20", "item", 20)
NEW = SliceSpec("new<1", "item", 1)
#: Stream windows reported per run (equal shares of the judged events).
WINDOWS = 10

# name -> TrainingConfig overrides (on top of the defaults). Kept in the order tried.
CONFIGS: dict[str, dict[str, Any]] = {
    "zero-shot": {"mode": "zero-shot"},
    "default": {},  # the TrainingConfig defaults (the chosen setting)
}


def base_vectors(items: list[dict[str, Any]], cache: Path) -> dict[str, np.ndarray]:
    """item id -> MiniLM vector, cached in ``cache``."""
    if cache.exists():
        data = np.load(cache)
        return dict(zip(data["ids"].tolist(), data["vectors"], strict=True))
    from workers.config import EncoderConfig
    from workers.encoder import TextEncoder

    encoder = TextEncoder(EncoderConfig(torch_threads=2))
    vectors = encoder.encode([str(i["text"]) for i in items])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, ids=np.array([i["item_id"] for i in items]), vectors=vectors)
    return dict(zip([i["item_id"] for i in items], vectors, strict=True))


def metrics(
    split: Split, valid: dict[str, list[str]], test: dict[str, list[str]]
) -> dict[str, float]:
    v, t = evaluate(valid, split.valid), evaluate(test, split.test)
    c = evaluate(test, slice_targets(split, COLD, "test"))
    rare = evaluate(test, slice_targets(split, RARE, "test"))
    new = evaluate(test, slice_targets(split, NEW, "test"))
    valid_new = evaluate(valid, slice_targets(split, NEW, "valid"))
    return {
        "valid_recall": v.recall, "valid_ndcg": v.ndcg, "valid_mrr": v.mrr,
        "test_recall": t.recall, "test_ndcg": t.ndcg, "test_mrr": t.mrr,
        "cold_users": c.users, "cold_recall": c.recall, "cold_ndcg": c.ndcg,
        "rare_users": rare.users, "rare_recall": rare.recall, "rare_ndcg": rare.ndcg,
        "new_users": new.users, "new_recall": new.recall, "new_ndcg": new.ndcg,
        "valid_new_users": valid_new.users, "valid_new_recall": valid_new.recall,
        "valid_new_ndcg": valid_new.ndcg,
    }  # fmt: skip


def run(
    name: str,
    overrides: dict[str, Any],
    split: Split,
    base: dict[str, np.ndarray],
    scenarios: dict[str, str],
    serve: bool = True,
    init: Path | None = None,
    save: Path | None = None,
    whole_catalog: bool = False,
) -> dict[str, Any]:
    config = TrainingConfig.model_validate(overrides)
    torch.manual_seed(config.seed)
    adapter = RecAdapter(config.adapter_config(384)) if init is None else load_adapter(init)
    started = time.perf_counter()
    whole_catalog = whole_catalog or config.whole_catalog  # as the pipeline's trainer
    result = simulate(
        split.train, base, scenarios, config, adapter, serve=serve, whole_catalog=whole_catalog
    )
    wall = time.perf_counter() - started
    valid, test = leave_one_out_lists(result.adapter, split, base, scenarios)
    gated = [r for r in result.rounds if r.steps and r.gate_samples]
    if save is not None:
        save_adapter(result.adapter, save, max(1, result.adapter.version))
    rounds = [r for r in result.rounds if r.steps]
    row = {
        "name": name,
        "overrides": overrides,
        "served": serve,
        "threads": torch.get_num_threads(),
        **metrics(split, valid, test),
        "rounds": len(rounds),
        "train_seconds": result.train_seconds,
        "seconds_per_round": result.train_seconds / max(1, len(rounds)),
        "reproject_seconds": result.reproject_seconds,
        "serve_seconds": result.serve_seconds,
        "wall_seconds": wall,
        "online_hr": result.online.overall.hr if result.online else None,
        "online_ndcg": result.online.overall.ndcg if result.online else None,
        "final_loss": rounds[-1].loss if rounds else None,
        "window_hr": [p.hr for _, _, p in equal_windows(result.online, WINDOWS)]
        if result.online
        else None,
        "rejected": sum(1 for r in result.rounds if r.steps and not r.accepted),
        "early_hr": result.early.overall.hr if result.early else None,
        "early_ndcg": result.early.overall.ndcg if result.early else None,
        "init": str(init) if init else None,
        "whole_catalog": whole_catalog,
        "recency": _recency(result.adapter),
        "gate": [
            [
                r.accepted,
                round(r.live_score, 4),
                round(r.candidate_score, 4),
                round(r.frozen_score, 4),
            ]
            for r in gated
        ],
        # The served (live) version's NDCG@10 on each round's held-out newest samples,
        # weighted by their count: a prequential score of the stream, ~100k samples.
        "stream_ndcg": _weighted([(r.live_score, r.gate_samples) for r in gated]),
        # user -> 0-based rank of the valid target on a hit: paired per-user comparisons
        # of two runs (`valid_ndcg` is their mean over every valid user).
        "valid_hits": _hits(valid, split.valid),
    }
    return row


def _weighted(scores: list[tuple[float, int]]) -> float | None:
    total = sum(n for _, n in scores)
    return sum(s * n for s, n in scores) / total if total else None


def _hits(lists: dict[str, list[str]], targets: dict[str, str], k: int = 10) -> dict[str, int]:
    ranks = {u: rank_of(lists.get(u, []), t, k) for u, t in targets.items()}
    return {u: r for u, r in ranks.items() if r is not None}


def _recency(adapter: RecAdapter | None) -> float | None:
    """The final adapter's per-event decay exp(-lam) of its attention (None: not attention)."""
    if adapter is None or adapter.aggregator.decay_raw is None:
        return None
    return math.exp(-float(adapter.aggregator.decay.detach()))


def baselines(split: Split) -> list[dict[str, Any]]:
    rows = []
    for name, fn in (("ItemKNN (ours)", item_knn), ("Pop (ours)", most_popular)):
        valid, test = fn(split, for_="valid"), fn(split, for_="test")
        rows.append({"name": name, "overrides": {}, **metrics(split, valid, test)})
    return rows


def pack(
    path: Path, events: list[dict[str, Any]], base: dict[str, np.ndarray], scenarios: dict[str, str]
) -> None:
    """The study's inputs as numbers (events as user / item codes in stream order, the
    items' ids, scenarios and base vectors): enough to rerun it on another machine
    without the dataset's files or the language model (`--packed`)."""
    ids = list(base)
    column = {item: n for n, item in enumerate(ids)}
    users: dict[str, int] = {}
    codes = np.array(
        [(users.setdefault(str(e["user_id"]), len(users)), column[str(e["item_id"])])
         for e in events], dtype=np.int32,
    )  # fmt: skip
    np.savez(
        path,
        events=codes,
        item_ids=np.array(ids),
        scenarios=np.array([scenarios.get(i, "default") for i in ids]),
        vectors=np.stack([base[i] for i in ids]).astype(np.float32),
    )


def unpack(path: Path) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, str]]:
    """Inverse of `pack`: (events, base vectors, scenarios); users are renamed by code."""
    data = np.load(path)
    ids = [str(i) for i in data["item_ids"]]
    scenarios = dict(zip(ids, (str(s) for s in data["scenarios"]), strict=True))
    events = [
        {"user_id": str(u), "item_id": ids[i], "scenario": scenarios[ids[i]]}
        for u, i in data["events"].tolist()
    ]
    return events, dict(zip(ids, data["vectors"], strict=True)), scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", nargs="*", default=[], help=f"configs: {sorted(CONFIGS)}")
    parser.add_argument("--set", default="{}", help="JSON overrides for a run named --name")
    parser.add_argument("--name", default="", help="name of the --set run")
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--no-serve", action="store_true", help="skip the per-event lists")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pack", type=Path, default=None, help="write the inputs (npz), stop")
    parser.add_argument("--packed", type=Path, default=None, help="read inputs from --pack")
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="repeat runs per seed")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--users", type=int, default=None, help="a random sample of users")
    parser.add_argument("--init", type=Path, default=None, help="start from this adapter dir")
    parser.add_argument("--save", type=Path, default=None, help="save the final adapter here")
    parser.add_argument(
        "--whole-catalog",
        action="store_true",
        help="the trainer knows every item from the start (also the config's whole_catalog)",
    )
    parser.add_argument("--results", type=Path, default=None, help="default: per dataset")
    parser.add_argument("--report", type=Path, default=None, help="write a markdown table")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("BASE", "CANDIDATE"),
        default=None,
        help="paired comparison of two runs in --results (names,joined,by,commas: seeds)",
    )
    parser.add_argument(
        "--source", nargs="*", default=[], help="LABEL=RESULTS.jsonl rows for --report"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.packed is not None:
        events, base, scenarios = unpack(args.packed)
        name = args.packed.stem
    else:
        dataset = load(args.data)
        events, name = dataset.events, args.data.name
        base = base_vectors(dataset.items, STUDY / f"{name}-minilm.npz")
        scenarios = {str(i["item_id"]): str(i.get("scenario") or "default") for i in dataset.items}
        if args.pack is not None:
            pack(args.pack, events, base, scenarios)
            return 0
    if args.users is not None:
        events = sample_users(events, args.users, seed=0)
        name = f"{name}-{args.users}u"
    split = leave_one_out(events)
    if args.results is None:
        args.results = STUDY / f"{name}.jsonl"
    if args.compare is not None:
        print(compare(split, args.results, *args.compare))
        return 0
    todo = [(n, CONFIGS[n]) for n in args.run]
    if args.name:
        todo.append((args.name, json.loads(args.set)))
    if args.seeds:
        todo = [(f"{n}-seed{s}", {**o, "seed": s}) for n, o in todo for s in args.seeds]
    rows = baselines(split) if args.baselines else []
    for name, overrides in todo:
        rows.append(
            run(
                name,
                overrides,
                split,
                base,
                scenarios,
                not args.no_serve,
                args.init,
                args.save,
                args.whole_catalog,
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    if rows:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    if args.report is not None:
        sources = [tuple(s.split("=", 1)) for s in args.source] or [("here", str(args.results))]
        args.report.write_text(render([(label, Path(path)) for label, path in sources]))
    return 0


def compare(split: Split, results: Path, base: str, candidate: str) -> str:
    """Paired differences of ``candidate`` against ``base`` (comma-separated run names,
    one per seed, in the same seed order) on the validation users and the stream's rounds."""
    rows = {r["name"]: r for r in map(json.loads, results.read_text().splitlines())}
    sides = [[rows[n] for n in names.split(",")] for names in (base, candidate)]
    users = list(split.valid)
    valid = paired_difference(*[[ndcg_gains(r["valid_hits"], users) for r in s] for s in sides])
    rounds = min(len(r["gate"]) for side in sides for r in side)
    stream = paired_difference(*[[[g[1] for g in r["gate"][:rounds]] for r in s] for s in sides])
    return (
        f"valid N@10 {valid.base:.4f} -> {valid.candidate:.4f}: {valid.diff:+.4f} "
        f"± {valid.se:.4f} (z {valid.z:+.2f}, {valid.n} users)\n"
        f"stream N@10 {stream.base:.4f} -> {stream.candidate:.4f}: {stream.diff:+.4f} "
        f"± {stream.se:.4f} (z {stream.z:+.2f}, {stream.n} rounds)"
    )


def render(sources: list[tuple[str, Path]]) -> str:
    """One markdown row per result row, in the order run."""
    head = (
        "| run | where | overrides | valid N@10 | test R@10 | test N@10 | test MRR@10 "
        "| cold<5 R@10 (n) | rare<20 R@10 (n) | rounds | train s | s/round |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for label, path in sources:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rare = f"{r['rare_recall']:.3f} ({r['rare_users']})" if "rare_users" in r else "n/a"
            timing = (
                f"{r['rounds']} | {r['train_seconds']:.0f} | {r['seconds_per_round']:.2f}"
                if "rounds" in r
                else "- | - | -"
            )
            lines.append(
                f"| {r['name']} | {label} | `{json.dumps(r['overrides'])}` "
                f"| {r['valid_ndcg']:.4f} | {r['test_recall']:.4f} | {r['test_ndcg']:.4f} "
                f"| {r['test_mrr']:.4f} | {r['cold_recall']:.3f} ({r['cold_users']}) "
                f"| {rare} | {timing} |"
            )
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
