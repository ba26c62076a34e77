"""The Kubernetes manifests agree with each other and with the settings.

Nothing here starts Docker or Kubernetes (see helpers.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.unit.deploy.helpers import (
    CONFIGMAP,
    K8S,
    TOPIC_VARS,
    WORKER_DEPLOYMENT,
    configmap_data,
    container,
    host_of,
    k8s_docs,
    k8s_one,
    load_all,
    pinned_ray_version,
    pod_spec,
    script_of,
    settings_from,
)

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


def test_worker_liveness_probe_checks_the_alive_file_s_age() -> None:
    worker = container(k8s_one("Deployment", WORKER_DEPLOYMENT), "worker")
    alive_file = configmap_data()["STREAMREC_ALIVE_FILE"]
    script = worker["livenessProbe"]["exec"]["command"][-1]
    assert alive_file in script and "stat -c %Y" in script
    # Longer than a health check's interval plus its timeout, so a slow check is not death.
    max_age = int(script.rsplit("-lt", 1)[1])
    assert max_age > 5.0 + 10.0


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
