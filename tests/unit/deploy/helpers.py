"""Loading and inspecting deploy/ for the static deployment checks."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY

import streams.metrics  # noqa: F401  (registers the worker's metrics)
from streams.kafka_settings import TopicNames
from streams.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
WORKER_DOCKERFILE = DEPLOY / "Dockerfile"
CONFIGMAP = "streamrec-config"
WORKER_DEPLOYMENT = "streamrec-worker"
WORKER_SERVICE = "worker"  # in compose.yaml

ENV_NAME = re.compile(r"\bSTREAMREC_[A-Z0-9_]*[A-Z0-9]\b")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/\s\"'`;,]*)", re.IGNORECASE)
TOPIC_VARS = [f"STREAMREC_KAFKA__TOPICS__{name.upper()}" for name in TopicNames.model_fields]
CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local")
SERIES = re.compile(r"\bstreamrec_[a-z_]+\b")  # a worker's series, named in a query


# ---- loading ---------------------------------------------------------------------------


def yaml_paths() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def text_files() -> list[Path]:
    files = []
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(load_all(path))
    return docs


def k8s_one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in k8s_docs()
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, got {len(found)}"
    return found[0]


def configmap_data() -> dict[str, str]:
    data: dict[str, str] = k8s_one("ConfigMap", CONFIGMAP)["data"]
    return data


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name!r} in {workload['metadata']['name']}"
    return found[0]


def compose() -> dict[str, Any]:
    docs = load_all(COMPOSE)
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def prometheus() -> dict[str, Any]:
    """deploy/prometheus.yml, the Prometheus configuration of compose."""
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    return doc


def compose_deps(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return {name: {} for name in deps}
    return {name: (spec or {}) for name, spec in deps.items()}


def script_of(command: Any) -> str:
    return "\n".join(command) if isinstance(command, list) else str(command)


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    assert host, f"no host in {url!r}"
    return str(host)


# ---- the names streamrec accepts -------------------------------------------------------


def setting_env_names() -> set[str]:
    """Every environment variable name the settings model reads (nested with ``__``)."""
    return env_names()


def settings_from(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a process with only ``env`` (of the STREAMREC_ names) sees them."""
    for key in list(os.environ):
        if key.startswith("STREAMREC_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("STREAMREC_"):
            monkeypatch.setenv(key, str(value))
    return Settings()


def pinned_ray_version() -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [
        m.group(1)
        for dep in pyproject["project"]["dependencies"]
        if (m := re.fullmatch(r"ray(?:\[[^\]]*\])?\s*==\s*([\w.]+)", dep.strip()))
    ]
    assert len(pins) == 1, "pyproject.toml must pin ray with =="
    return pins[0]


# ---- images ----------------------------------------------------------------------------


def images_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from images_in(item)


def logical_lines(dockerfile: Path) -> list[str]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]


def dockerfile_bases(dockerfile: Path) -> list[str]:
    """Base images of every FROM, with ARG defaults substituted; later stages skipped."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases = []
    for line in logical_lines(dockerfile):
        if m := re.match(r"ARG\s+(\w+)=(\S*)", line):
            args.setdefault(m.group(1), m.group(2))
        elif m := re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            ref = re.sub(r"\$\{?(\w+)\}?", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
            if ref not in stages:
                bases.append(ref)
            if m.group(2):
                stages.add(m.group(2))
    return bases


def copied_sources(dockerfile: Path) -> list[str]:
    """The build-context paths every COPY/ADD takes (``--from`` stages and options skipped)."""
    sources: list[str] = []
    for line in logical_lines(dockerfile):
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        if any(w.startswith("--from") for w in words[1:]):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        sources.extend(args[:-1])  # the last one is the destination
    return sources


PIP_VALUE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-r", "-c", "-f", "--find-links"}


def pip_installs(dockerfile: Path) -> list[str]:
    """What each ``pip install`` of the Dockerfile names (options skipped, quotes removed)."""
    found: list[str] = []
    for line in logical_lines(dockerfile):
        for command in re.split(r"&&|;|\|\|", line):
            words = command.split()
            if "pip" in words and "install" in words[words.index("pip") :]:
                rest = iter(words[words.index("install", words.index("pip")) + 1 :])
                for word in rest:
                    if word in PIP_VALUE_OPTIONS:
                        next(rest, None)  # the option's value
                    elif not word.startswith("-"):
                        found.append(word.strip("\"'"))
    return found


def installed_extras(dockerfile: Path) -> set[str]:
    """The extras of this project a Dockerfile installs (``.[a,b]`` -> {a, b})."""
    extras: set[str] = set()
    for spec in pip_installs(dockerfile):
        if m := re.fullmatch(r"\.\[([^\]]*)\]", spec):
            extras.update(e.strip() for e in m.group(1).split(","))
    return extras


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def dockerfiles() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("Dockerfile*") if not p.name.endswith(".dockerignore"))


def all_images() -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for path in yaml_paths():
        for doc in load_all(path):
            refs.extend((str(path.relative_to(ROOT)), ref) for ref in images_in(doc))
    for path in dockerfiles():
        refs.extend((str(path.relative_to(ROOT)), ref) for ref in dockerfile_bases(path))
    return refs


def pin_problem(ref: str) -> str | None:
    if "$" in ref:
        return "unresolved variable"
    name, _, digest = ref.partition("@")
    if digest:
        return None if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else "bad digest"
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    if not tag:
        return "no tag"
    if tag == "latest":
        return "tag 'latest'"
    return None


def registry_problem(ref: str) -> str | None:
    parts = ref.partition("@")[0].split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        return f"names a registry host {first!r}"
    return None


def exported() -> set[str]:
    """Every sample name the worker's registry can export (counters' _total, histograms'
    _bucket/_sum/_count included)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("streamrec_"):
            names.add(family.name)
            names.update(s.name for s in family.samples)
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names.update(family.name + x for x in suffixes.get(family.type, []))
    return names
