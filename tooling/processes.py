"""This machine's processes as /proc shows them: parents, titles, Ray actors, memory, CPU.

Used by the bench's memory probe and the fault suite (which kills actor processes and
finds the Ray node that runs one). Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    title: str  # argv[0] as the process shows it (Ray actors: "ray::<Class>[.method]")


def processes() -> dict[int, Process]:
    """{pid: Process} of every process readable now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        found[int(entry.name)] = Process(int(entry.name), ppid, title)
    return found


def actor_class(title: str) -> str | None:
    """The Ray actor class a process title names ("ray::Catalog.index" -> "Catalog"); None
    for anything else (Ray's idle workers and agents included)."""
    if not title.startswith("ray::"):
        return None
    name = title[len("ray::") :].split(".")[0].split(" ")[0]
    if not name[:1].isupper() or name == "IDLE" or name.endswith("Agent"):
        return None
    return name


def actor_pids(class_name: str, under: Sequence[int] | None = None) -> list[int]:
    """Processes running a Ray actor of ``class_name``: anywhere on this machine, or only
    below the processes ``under`` (a cluster's `ray start` processes: not another Ray
    that runs on the same machine)."""
    if under is None:
        candidates = list(processes().values())
    else:
        candidates = [p for root in under for p in descendants(root)]
    return [p.pid for p in candidates if actor_class(p.title) == class_name]


def ancestors(pid: int) -> set[int]:
    table = processes()
    found = set()
    while pid in table and table[pid].ppid > 1:
        pid = table[pid].ppid
        found.add(pid)
    return found


def descendants(pid: int) -> list[Process]:
    table = processes()
    children: dict[int, list[Process]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p.pid, []))
    return out


def ray_address_of(pid: int) -> str | None:
    """The GCS address of the local Ray that process ``pid`` started (its raylet's
    ``--gcs-address``); None if it started none. Ray's own ``address="auto"`` picks the
    newest cluster it knows of, which is another one while several run on this machine."""
    for process in descendants(pid):
        try:
            args = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in args:
            if arg.startswith(b"--gcs-address="):
                return arg.split(b"=", 1)[1].decode()
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used, in seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # from the state on: utime, stime are 12, 13
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size in MB (0 when the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0
