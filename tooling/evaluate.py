"""``streamrec eval``: the literature's protocol, run through the real pipeline.

Leave-one-out by time (``tooling.evaluation.split``): each user's training events are
streamed in time order through a real deployment (`tooling.replay`) with online
training on; then each user's validation event is streamed as a probe. Scored, after
removing everything the user had (full exclusion, as RecBole ranks):

* validation target <- the list served after the user's last training event (the
  model of that moment: what the stream really showed);
* test target <- the list served after the validation probe (the final model, its
  history including the validation item);
* prequential: every training event against the list served after the user's previous
  event, over stream time and model versions.

Baselines on the same split: Pop, ItemKNN and streamrec zero-shot (training off, the
same pipeline). With ``transfer_from`` (an earlier eval's results folder), a third run
starts from that run's final adapter (another scenario's shared part) and is compared
with the from-scratch online run. Output: ``report.md``, PNG plots and
``metrics.json`` under ``out/<dataset>/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tooling.datasets import Record, load, sample_users
from tooling.evaluation import (
    Evaluation,
    ModelResult,
    RankingMetrics,
    Split,
    StreamRun,
    Transfer,
    item_knn,
    leave_one_out,
    most_popular,
    observations_from_stream,
    parse_peer_notes,
    parse_peers,
    plot_latency,
    plot_prequential,
    plot_vs_peers,
    prequential,
    render_evaluation,
    score_model,
    split_sizes,
)
from tooling.evaluation.report_sections import PIPELINE_NOTES
from tooling.evaluation.seeds_section import seed_runs
from tooling.progress import print_test_summary
from tooling.replay import RunPlan, RunResult, run
from workers.training import TrainingConfig

PEER_SECTIONS = {
    "ml-100k": "ML-100K",
    "ml-latest-small": "ML-latest-small",
    "amazon-beauty": "Amazon Beauty",
}


@dataclass
class EvalOptions:
    data: Path
    out: Path = Path("results")
    seed: int = 2020
    users: int | None = None  # evaluate a random subset of users (quick runs, tests)
    transfer_from: Path | None = None  # an earlier eval's results folder (its adapter)
    zero_shot: bool = True
    k: int = 10
    fetch_k: int = 50  # list length asked of the pipeline (full exclusion trims it)
    env: dict[str, str] = field(default_factory=dict)  # extra STREAMREC_* for workers
    peers: Path | None = None  # PEERS.md (default: next to the dataset folder)
    seeds: int = 1  # online runs with seeds seed, seed + 1, ...: the report adds mean ± sd
    paced: bool = True  # hold the stream for each due training round (tooling.replay)


@dataclass(frozen=True)
class Phases:
    """A dataset split into what is streamed and what is scored."""

    split: Split
    train: list[Record]
    probes: list[Record]  # each evaluated user's validation event
    last_train: dict[str, str]  # user -> event_id of their last training event


def phases(events: Sequence[Record]) -> Phases:
    split = leave_one_out(events)
    positions: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        positions.setdefault(str(event["user_id"]), []).append(index)
    probes = [dict(events[i]) for i in sorted(positions[u][-2] for u in split.valid)]
    last_train: dict[str, str] = {}
    for train_event in split.train:
        last_train[str(train_event["user_id"])] = str(train_event["event_id"])
    return Phases(split, [dict(e) for e in split.train], probes, last_train)


def trimmed(items: Sequence[str], exclude: set[str] | frozenset[str], k: int) -> list[str]:
    return [i for i in items if i not in exclude][:k]


def offline_lists(
    result: RunResult, ph: Phases, k: int
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(test lists, valid lists) per user, the user's history removed."""
    probe_of = {str(p["user_id"]): str(p["event_id"]) for p in ph.probes}
    test = {
        u: trimmed(result.served[e].items, ph.split.history_for_test(u), k)
        for u, e in probe_of.items()
    }
    valid = {
        u: trimmed(result.served[ph.last_train[u]].items, ph.split.history_for_valid(u), k)
        for u in ph.split.valid
        if u in ph.last_train
    }
    return test, valid


def stream_run(result: RunResult, ph: Phases, k: int) -> StreamRun:
    """Prequential over the training stream, lists trimmed of what the user had so far."""
    seen: dict[str, set[str]] = {}
    lists: dict[str, list[str]] = {}
    versions: dict[str, str] = {}
    for event in ph.train:
        user, event_id = str(event["user_id"]), str(event["event_id"])
        seen.setdefault(user, set()).add(str(event["item_id"]))
        served = result.served[event_id]
        lists[event_id] = trimmed(served.items, seen[user], k)
        versions[event_id] = str(served.model_version)
    observations = observations_from_stream(ph.train, lists, versions)
    window = max(200, len(ph.train) // 40)
    latencies = [result.served[str(e["event_id"])].latency_ms for e in ph.train]
    return StreamRun(result.name, prequential(observations, k, window), latencies, result.rounds)


def cold_user_stream_run(result: RunResult, ph: Phases, k: int, below: int = 5) -> StreamRun:
    """Prequential restricted to each user's events 2..``below`` (the list judged was
    served after fewer than ``below`` events of theirs): the cold-user slice of the
    stream, where every user of a MovieLens split is still new."""
    counts: dict[str, int] = {}
    early: list[Record] = []
    for event in ph.train:
        user = str(event["user_id"])
        counts[user] = counts.get(user, 0) + 1
        if counts[user] <= below:
            early.append(event)
    full = stream_run(result, Phases(ph.split, early, ph.probes, ph.last_train), k)
    return StreamRun(f"{result.name}, users' first {below} events", full.prequential)


def run_eval(opts: EvalOptions, console: Console | None = None) -> Path:
    console = console or Console()
    name = opts.data.name
    data = load(opts.data, scenario=name)
    ph = phases(sample_users(data.events, opts.users, opts.seed))
    catalog = data.items
    env = {
        "STREAMREC_RECOMMEND__TOP_K": str(opts.fetch_k),
        "STREAMREC_RECOMMEND__EXACT_SEARCH": "true",
        "STREAMREC_TRAINING__SEED": str(opts.seed),
        # Paced, the replay holds the stream for every due round, so resting after a
        # round (`TrainingConfig.max_share`) would add wall time and change nothing.
        **({"STREAMREC_TRAINING__MAX_SHARE": "1"} if opts.paced else {}),
        **opts.env,
    }
    out = opts.out / name
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    console.rule(f"[bold]streamrec eval: {name}")
    console.print(
        f"{len(ph.split.test)} users evaluated, {len(ph.train)} training events streamed, "
        f"{len(ph.probes)} probes, catalog of {len(catalog)} items"
    )

    def plan(
        run_name: str, mode: str, seed_adapter: Path | None = None, seed: int = opts.seed
    ) -> RunPlan:
        return RunPlan(
            name=run_name,
            scenario=name,
            items=catalog,
            train=ph.train,
            probes=ph.probes,
            workdir=work / run_name,
            env={**env, "STREAMREC_TRAINING__MODE": mode, "STREAMREC_TRAINING__SEED": str(seed)},
            seed_adapter=seed_adapter,
            settle=_trainer_setting(env, "train_every_seconds") + 15.0 if mode == "online" else 0.0,
            pace_every=(
                int(_trainer_setting(env, "train_every_samples"))
                if mode == "online" and opts.paced
                else None
            ),
        )

    seeds = seed_runs(opts.seed, opts.seeds)
    runs = [run(plan(run_name, "online", seed=s), console) for s, run_name in seeds]
    if opts.zero_shot:
        runs.append(run(plan("streamrec zero-shot", "zero-shot"), console))
    transfer_run = None
    if opts.transfer_from is not None:
        seed_dir = _final_adapter(opts.transfer_from)
        transfer_run = run(
            plan(f"streamrec online from {opts.transfer_from.name}", "online", seed_dir), console
        )
        runs.append(transfer_run)

    models = []
    for result in runs:
        test, valid = offline_lists(result, ph, opts.k)
        models.append(
            score_model(result.name, ph.split, test, valid, opts.k, catalog_size=len(catalog))
        )
    for label, ranker in (("Pop", most_popular), ("ItemKNN", item_knn)):
        test_l = ranker(ph.split, opts.k, "test")
        valid_l = ranker(ph.split, opts.k, "valid")
        models.append(
            score_model(label, ph.split, test_l, valid_l, opts.k, catalog_size=len(catalog))
        )
    whole = [stream_run(r, ph, opts.k) for r in runs]
    new_users = [cold_user_stream_run(r, ph, opts.k) for r in runs]
    streams = whole + new_users

    transfers = []
    if transfer_run is not None:
        by_name = {m.name: m for m in models}
        transfers.append(
            Transfer(
                source=opts.transfer_from.name if opts.transfer_from else "",
                target=name,
                from_shared=by_name[transfer_run.name].test,
                from_scratch=by_name["streamrec online"].test,
            )
        )
    peers, notes = _peers(opts, name)
    plots = [
        (
            "Prequential HR@10 / NDCG@10 over the stream",
            plot_prequential({s.name: s.prequential for s in whole}, out / "prequential.png"),
        ),
        (
            "Prequential HR@10 / NDCG@10 on users' first 5 events (cold users)",
            plot_prequential(
                {s.name: s.prequential for s in new_users}, out / "prequential-new-users.png"
            ),
        ),
        (
            "Latency (event produced -> recommendation produced)",
            plot_latency(
                {s.name: list(s.latencies_ms) for s in whole},
                out / "latency.png",
            ),
        ),
        (
            "Test NDCG@10 / Recall@10 vs peers",
            plot_vs_peers({m.name: m.test for m in models}, peers, out / "vs-peers.png"),
        ),
    ]
    evaluation = Evaluation(
        dataset=name,
        seed=opts.seed,
        split_sizes=split_sizes(ph.split),
        settings=_settings_rows(opts, env, runs),
        models=models,
        k=opts.k,
        peers=peers,
        peer_notes=notes,
        streams=streams,
        transfers=transfers,
        plots=[(caption, path.name) for caption, path in plots],
        notes=_notes(runs),
        seeds=seeds if len(seeds) > 1 else (),
    )
    report = out / "report.md"
    report.write_text(render_evaluation(evaluation), encoding="utf-8")
    (out / "metrics.json").write_text(
        json.dumps(_metrics_json(models, runs), indent=2, sort_keys=True), encoding="utf-8"
    )
    if runs[0].final_adapter is not None:
        _keep_adapter(runs[0].final_adapter, out / "adapter")
    shutil.rmtree(work)  # broker logs and stores of the runs (kept when a run fails)
    print_test_summary(console, models, report)
    return report


def _trainer_setting(env: Mapping[str, str], name: str) -> float:
    """A trainer setting as the workers get it: STREAMREC_TRAINING__<NAME> in ``env``, else
    its default (the settle wait is T plus a margin for the round; the pace is N)."""
    value = env.get(f"STREAMREC_TRAINING__{name.upper()}")
    return float(value) if value else float(getattr(TrainingConfig(), name))


def _final_adapter(results: Path) -> Path:
    folder = results / "adapter"
    versions = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not versions:
        raise ValueError(f"{results}: no adapter/ from an earlier `streamrec eval` run")
    return versions[-1]


def _keep_adapter(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target / source.name)


def _peers(
    opts: EvalOptions, name: str
) -> tuple[Mapping[str, Mapping[str, float]] | None, Mapping[str, str]]:
    path = opts.peers or opts.data.parent / "PEERS.md"
    section = PEER_SECTIONS.get(name)
    if section is None or opts.users is not None or not path.is_file():
        return None, {}  # (peers ranked every user: a sample of users is not comparable)
    text = path.read_text(encoding="utf-8")
    return parse_peers(text).get(section), parse_peer_notes(text).get(section, {})


def _settings_rows(
    opts: EvalOptions, env: Mapping[str, str], runs: Sequence[RunResult]
) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("dataset", str(opts.data)),
        ("users", "all" if opts.users is None else opts.users),
        ("list length asked of the pipeline", opts.fetch_k),
        ("replay", "paced to the trainer" if opts.paced else "firehose"),
    ]
    rows.extend(sorted(env.items()))
    # The trainer's effective settings: its defaults, as this code has them, unless set.
    for key, value in TrainingConfig().model_dump().items():
        name = f"STREAMREC_TRAINING__{key.upper()}"
        if name not in env:
            rows.append((f"{name} (default)", value))
    for r in runs:
        rows.append((f"{r.name}: versions published", r.published))
        rows.append((f"{r.name}: rounds (accepted)", f"{len(r.rounds)} ({_accepted(r)})"))
        rows.append((f"{r.name}: stream seconds", round(r.stream_seconds, 1)))
        if r.paced:
            rows.append((f"{r.name}: due rounds not waited for (stalls)", r.stalls))
        rows.append((f"{r.name}: events/s", round(_events(r) / max(r.stream_seconds, 1e-9), 1)))
    return rows


def _accepted(result: RunResult) -> int:
    return sum(1 for r in result.rounds if r.get("accepted"))


def _events(result: RunResult) -> int:
    return len(result.served)


def _notes(runs: Sequence[RunResult]) -> str:
    lines = list(PIPELINE_NOTES)
    for r in runs:
        versions = sorted({s.model_version for s in r.served.values()})
        if versions:
            lines.append(
                f"{r.name}: model versions served {versions[0]}..{versions[-1]}; test lists "
                f"(the probes) by {', '.join(map(str, r.probe_versions)) or 'none'}."
            )
    return "\n\n".join(lines)


def _metrics_json(models: Sequence[ModelResult], runs: Sequence[RunResult]) -> dict[str, Any]:
    def metrics(m: RankingMetrics | None) -> dict[str, Any] | None:
        return None if m is None else asdict(m)

    return {
        "models": {
            m.name: {
                "test": metrics(m.test),
                "valid": metrics(m.valid),
                "test_slices": {k: metrics(v) for k, v in m.test_slices.items()},
            }
            for m in models
        },
        "runs": {
            r.name: {
                "versions": r.versions,
                "rounds": r.rounds,
                "stream_seconds": r.stream_seconds,
                "settle_seconds": r.settle_seconds,
                "probe_versions": list(r.probe_versions),
            }
            for r in runs
        },
    }
