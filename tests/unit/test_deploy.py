"""Static checks of deploy/: the compose file, the Kubernetes manifests, the Dockerfiles.

Nothing here starts Docker or Kubernetes. The files are parsed and cross-checked against
the settings model and pyproject.toml, so that an edit which would break a deployment
(an unpinned image, a misspelt setting, more workers than partitions, a Ray version
mismatch, a dangling depends_on) fails here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from streams.settings import Settings, TopicNames

ROOT = Path(__file__).resolve().parents[2]
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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def setting_env_names(model: type[BaseModel] = Settings, prefix: str = "STREAMREC_") -> set[str]:
    """Every environment variable name the settings model reads (nested with ``__``)."""
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        name = prefix + field_name.upper()
        names.add(name)
        for nested in _models_in(field.annotation):
            names |= setting_env_names(nested, name + "__")
    return names


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


def test_setting_env_names_walks_nested_sections() -> None:
    names = setting_env_names()
    assert {
        "STREAMREC_DATA_DIR",
        "STREAMREC_READY_FILE",
        "STREAMREC_KAFKA__BROKER",
        "STREAMREC_KAFKA__PARTITIONS",
        "STREAMREC_KAFKA__TOPICS__DEAD_LETTERS",
        "STREAMREC_RAY__ADDRESS",
        "STREAMREC_STORE__API_KEY",
        "STREAMREC_ENCODER__NUM_GPUS",
        "STREAMREC_ENCODER__MODEL_PATH",
    } <= names
    assert "STREAMREC_KAFKA__BROKERS" not in names
    assert "STREAMREC_TOPICS__ITEMS" not in names


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


def test_image_checks_catch_bad_references() -> None:
    assert pin_problem("apache/kafka:3.9.0") is None
    assert pin_problem("apache/kafka") == "no tag"
    assert pin_problem("apache/kafka:latest") == "tag 'latest'"
    assert pin_problem("localhost:5000/streamrec") == "no tag"
    assert pin_problem("x/y:${TAG}") == "unresolved variable"
    assert registry_problem("qdrant/qdrant:v1.20.0") is None
    assert registry_problem("python:3.11-slim") is None
    assert registry_problem("host.example/qdrant/qdrant:v1.20.0") is not None
    assert registry_problem("localhost:5000/streamrec:1") is not None
    assert registry_problem("localhost/streamrec:1") is not None


def test_images_are_found_everywhere() -> None:
    refs = {ref for _, ref in all_images()}
    for expected in ("python:3.11-slim", "apache/kafka:", "qdrant/qdrant:", "rayproject/ray:"):
        assert any(ref.startswith(expected) for ref in refs), f"no {expected} image found"
    assert any(ref.startswith("streamrec:") for ref in refs)
    assert any(ref.startswith("streamrec-ray:") for ref in refs)


@pytest.mark.parametrize(("where", "ref"), all_images(), ids=lambda v: str(v))
def test_image_is_pinned_and_names_no_registry(where: str, ref: str) -> None:
    assert pin_problem(ref) is None, f"{where}: {ref}: {pin_problem(ref)}"
    assert registry_problem(ref) is None, f"{where}: {ref}: {registry_problem(ref)}"


def test_no_outside_host_is_named() -> None:
    """URLs in deploy/ point at in-cluster names only (services, *.svc, loopback)."""
    bad = []
    for path in text_files():
        for m in URL.finditer(path.read_text(encoding="utf-8")):
            host = m.group(1).rsplit("@", 1)[-1].rstrip(".):")
            host = re.sub(r":\d+$", "", host)
            try:
                ipaddress.ip_address(host)
                continue
            except ValueError:
                pass
            if "." in host and not host.endswith(CLUSTER_SUFFIXES):
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not bad, bad


# ---- every YAML file parses, every STREAMREC_ name exists -----------------------------


@pytest.mark.parametrize("path", yaml_paths(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in docs)


def test_every_streamrec_env_name_is_a_setting() -> None:
    valid = setting_env_names()
    used: dict[str, set[str]] = {}
    for path in text_files():
        for name in ENV_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert len(used) >= 5, "expected deploy/ to set STREAMREC_* variables"
    unknown = {name: sorted(paths) for name, paths in used.items() if name not in valid}
    assert not unknown, f"not settings of streams.settings.Settings: {unknown}"


# ---- Kubernetes ------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == present


def test_manifests_share_one_namespace() -> None:
    namespace = k8s_one("Namespace")["metadata"]["name"]
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    assert kustomization.get("namespace", namespace) == namespace
    for doc in k8s_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


def test_configmap_validates_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    data = configmap_data()
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    settings = settings_from({**data, "STREAMREC_STORE__API_KEY": "k"}, monkeypatch)
    assert settings.ray.address is not None and settings.ray.address.startswith("ray://")
    assert settings.store.url.startswith(("http://", "https://"))
    assert settings.ready_file is not None


def test_configmap_points_at_the_services() -> None:
    data = configmap_data()
    services = {d["metadata"]["name"] for d in k8s_docs() if d["kind"] == "Service"}
    for url in data["STREAMREC_KAFKA__BROKER"].replace(",", ";").split(";"):
        assert host_of(url) in services
    assert host_of(data["STREAMREC_STORE__URL"]) in services
    # KubeRay names the head Service <RayCluster name>-head-svc.
    ray_cluster = k8s_one("RayCluster")["metadata"]["name"]
    ray = urlsplit(data["STREAMREC_RAY__ADDRESS"])
    assert (ray.scheme, ray.hostname, ray.port) == ("ray", f"{ray_cluster}-head-svc", 10001)


def test_worker_replicas_do_not_exceed_partitions() -> None:
    deployment = k8s_one("Deployment", WORKER_DEPLOYMENT)
    worker = container(deployment, "worker")
    assert {"configMapRef": {"name": CONFIGMAP}} in worker["envFrom"]
    partitions = int(configmap_data()["STREAMREC_KAFKA__PARTITIONS"])
    replicas = deployment["spec"]["replicas"]
    assert 1 <= replicas <= partitions, f"{replicas} workers for {partitions} partitions"
    surge = deployment["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge")
    assert surge == 0 or replicas < partitions, "a rollout would exceed the partition count"


def test_worker_reads_the_qdrant_key_from_a_secret() -> None:
    worker = container(k8s_one("Deployment", WORKER_DEPLOYMENT), "worker")
    (api_key,) = [e for e in worker.get("env", []) if e["name"] == "STREAMREC_STORE__API_KEY"]
    ref = api_key["valueFrom"]["secretKeyRef"]
    qdrant = container(k8s_one("StatefulSet", "qdrant"), "qdrant")
    (server_key,) = [e for e in qdrant["env"] if e["name"] == "QDRANT__SERVICE__API_KEY"]
    assert server_key["valueFrom"]["secretKeyRef"] == ref
    assert "STREAMREC_STORE__API_KEY" not in configmap_data()


def test_worker_readiness_probe_uses_the_ready_file() -> None:
    deployment = k8s_one("Deployment", WORKER_DEPLOYMENT)
    worker = container(deployment, "worker")
    ready_file = configmap_data()["STREAMREC_READY_FILE"]
    assert worker["readinessProbe"]["exec"]["command"] == ["test", "-f", ready_file]
    assert worker.get("args", ["worker"])[0] == "worker"
    assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True


def test_worker_init_container_script_compiles() -> None:
    deployment = k8s_one("Deployment", WORKER_DEPLOYMENT)
    for init in pod_spec(deployment).get("initContainers", []):
        command = init["command"]
        if command[:2] == ["python", "-c"]:
            compile(command[2], f"{init['name']}", "exec")


def test_raycluster_matches_pyproject_ray() -> None:
    cluster = k8s_one("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == pinned_ray_version()


def test_raycluster_has_cpu_and_gpu_worker_groups() -> None:
    groups = k8s_one("RayCluster")["spec"]["workerGroupSpecs"]

    def gpus(group: dict[str, Any]) -> int:
        limits = group["template"]["spec"]["containers"][0]["resources"].get("limits", {})
        return int(limits.get("nvidia.com/gpu", 0))

    assert any(gpus(g) == 0 and g["replicas"] >= 1 for g in groups), "no CPU worker group"
    assert any(gpus(g) == 1 for g in groups), "no GPU worker group"
    for group in groups:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_topics_job_creates_every_topic_from_the_config() -> None:
    job = k8s_one("Job")
    (topics,) = pod_spec(job)["containers"]
    assert {"configMapRef": {"name": CONFIGMAP}} in topics["envFrom"]
    script = script_of(topics.get("command", [])) + "\n" + script_of(topics.get("args", []))
    assert "kafka-topics.sh" in script and "--create" in script
    for var in [*TOPIC_VARS, "STREAMREC_KAFKA__PARTITIONS", "STREAMREC_KAFKA__REPLICATION"]:
        assert var in script, f"topics Job ignores {var}"
        assert var in configmap_data()


# ---- images and Ray versions -----------------------------------------------------------


def test_ray_images_match_ray_and_python_versions() -> None:
    ray = pinned_ray_version()
    (python_base,) = dockerfile_bases(WORKER_DOCKERFILE)
    m = re.fullmatch(r"python:(\d+)\.(\d+)[\w.-]*", python_base)
    assert m, f"worker image base {python_base!r} is not python:X.Y..."
    py_tag = f"py{m.group(1)}{m.group(2)}"
    bases = [b for path in dockerfiles() for b in dockerfile_bases(path)]
    ray_bases = [b for b in bases if b.startswith("rayproject/")]
    assert ray_bases, "no Dockerfile bases on a rayproject/ray image"
    for base in ray_bases:
        tag = base.partition(":")[2]
        assert tag.split("-")[0] == ray, f"{base}: Ray {ray} pinned in pyproject.toml"
        assert py_tag in tag.split("-"), f"{base}: the worker image runs {py_tag}"
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", WORKER_DOCKERFILE.read_text(), re.M))
    if "RAY_VERSION" in args:
        assert args["RAY_VERSION"] == ray


def test_worker_dockerfile_runs_streamrec_worker_as_non_root() -> None:
    lines = logical_lines(WORKER_DOCKERFILE)
    assert 'ENTRYPOINT ["streamrec"]' in lines
    assert 'CMD ["worker"]' in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"
    assert any(re.search(r"\bHF_HUB_OFFLINE=1\b", line) for line in lines)
    assert any("torch==" in line for line in lines)


# ---- compose ---------------------------------------------------------------------------


def test_compose_depends_on_existing_services() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dep, spec in compose_deps(service).items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            assert dep != name
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                check = services[dep].get("healthcheck", {})
                assert check.get("test"), f"{name} waits for {dep}'s health, it has no check"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", f"{dep} must run once"
            else:
                assert condition == "service_started", condition


def test_compose_worker_waits_for_its_dependencies() -> None:
    services = compose()["services"]
    worker = services[WORKER_SERVICE]
    deps = compose_deps(worker)
    env = worker["environment"]
    ray_host = host_of(env["STREAMREC_RAY__ADDRESS"])
    store_host = host_of(env["STREAMREC_STORE__URL"])
    kafka_host = host_of(env["STREAMREC_KAFKA__BROKER"])
    for host in (ray_host, store_host, kafka_host):
        assert host in services, f"{host} is not a compose service"
        assert deps.get(host, {}).get("condition") == "service_healthy", host
    creators = [n for n, s in services.items() if "kafka-topics.sh" in script_of(s.get("command"))]
    assert creators, "no service creates the topics"
    for name in creators:
        assert deps[name]["condition"] == "service_completed_successfully"


def test_compose_worker_env_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = compose()["services"][WORKER_SERVICE]
    settings = settings_from(worker["environment"], monkeypatch)
    assert settings.ray.address == "ray://ray-head:10001"
    assert worker["healthcheck"]["test"][-1] == str(settings.ready_file)


def test_compose_worker_replicas_do_not_exceed_partitions() -> None:
    services = compose()["services"]
    worker = services[WORKER_SERVICE]
    partitions = int(worker["environment"]["STREAMREC_KAFKA__PARTITIONS"])
    replicas = worker.get("deploy", {}).get("replicas", 1)
    assert 1 <= replicas <= partitions, f"{replicas} workers for {partitions} partitions"


def test_compose_topics_use_the_workers_settings() -> None:
    services = compose()["services"]
    worker_env = services[WORKER_SERVICE]["environment"]
    for name, service in services.items():
        script = script_of(service.get("command"))
        if "kafka-topics.sh" not in script or "--create" not in script:
            continue
        env = service.get("environment", {})
        for var in [*TOPIC_VARS, "STREAMREC_KAFKA__PARTITIONS", "STREAMREC_KAFKA__REPLICATION"]:
            assert var in script, f"{name} ignores {var}"
            assert env.get(var) == worker_env.get(var), f"{name}: {var} differs from the workers'"
