"""The deployment's security: non-root pods, Ray token auth and its ports kept inside,
a NetworkPolicy, and Qdrant's API key over HTTPS only (Kubernetes and compose).

Nothing here starts Docker or Kubernetes (see helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deploy.helpers import (
    WORKER_DEPLOYMENT,
    WORKER_SERVICE,
    compose,
    configmap_data,
    container,
    k8s_docs,
    k8s_one,
    pod_spec,
    settings_from,
)

RAY_CLUSTER_LABEL = "ray.io/cluster"


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every workload, each RayCluster group included."""
    found = []
    for doc in k8s_docs():
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            found.append((name, pod_spec(doc)))
        elif doc["kind"] == "RayCluster":
            found.append((f"{name}/head", doc["spec"]["headGroupSpec"]["template"]["spec"]))
            for group in doc["spec"]["workerGroupSpecs"]:
                found.append((f"{name}/{group['groupName']}", group["template"]["spec"]))
    return found


def ray_groups() -> list[dict[str, Any]]:
    spec = k8s_one("RayCluster")["spec"]
    return [spec["headGroupSpec"], *spec["workerGroupSpecs"]]


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in spec.get("env", [])}


def mounted_secret(pod: dict[str, Any], box: dict[str, Any], path: str) -> str:
    """The Secret whose volume ``box`` (a container) mounts at the folder of ``path``."""
    folder = path.rsplit("/", 1)[0]
    (mount,) = [m for m in box.get("volumeMounts", []) if m["mountPath"] == folder]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return str(volume["secret"]["secretName"])


@pytest.mark.parametrize(
    ("name", "pod"), [pytest.param(name, pod, id=name) for name, pod in pod_specs()]
)
def test_every_pod_runs_as_non_root(name: str, pod: dict[str, Any]) -> None:
    context = pod.get("securityContext", {})
    assert context.get("runAsNonRoot") is True, name
    assert context.get("runAsUser", 0) != 0, name
    for box in pod["containers"] + pod.get("initContainers", []):
        assert box.get("securityContext", {}).get("runAsUser", 1) != 0, (name, box["name"])


def test_ray_pods_drop_privileges_and_use_the_token() -> None:
    for group in ray_groups():
        pod = group["template"]["spec"]
        for box in pod["containers"]:
            context = box["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            env = env_of(box)
            assert env["RAY_AUTH_MODE"] == "token"
            assert mounted_secret(pod, box, env["RAY_AUTH_TOKEN_PATH"]) == "streamrec-ray-token"


def test_workers_join_ray_with_the_same_token_secret() -> None:
    data = configmap_data()
    assert data["STREAMREC_RAY__AUTH_MODE"] == "token"
    deployment = k8s_one("Deployment", WORKER_DEPLOYMENT)
    worker = container(deployment, "worker")
    token = data["STREAMREC_RAY__AUTH_TOKEN_PATH"]
    assert mounted_secret(pod_spec(deployment), worker, token) == "streamrec-ray-token"


def test_ray_dashboard_and_client_stay_inside_the_cluster() -> None:
    head = k8s_one("RayCluster")["spec"]["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert 8265 not in ports  # the dashboard is not exposed
    for doc in k8s_docs():
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]["name"]


def policies() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == "NetworkPolicy"}


def ingress_ports(policy: dict[str, Any], source: dict[str, Any]) -> set[int] | None:
    """Ports ``source`` (a pod's labels) may reach under ``policy``; None: all ports."""
    allowed: set[int] = set()
    for rule in policy["spec"].get("ingress", []):
        matches = any(
            peer == {"namespaceSelector": {}}
            or (
                "podSelector" in peer
                and peer["podSelector"]["matchLabels"].items() <= source.items()
            )
            for peer in rule["from"]
        )
        if matches:
            if "ports" not in rule:
                return None
            allowed |= {p["port"] for p in rule["ports"]}
    return allowed


def test_a_network_policy_denies_by_default_and_opens_only_what_is_needed() -> None:
    found = policies()
    deny = [p for p in found.values() if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and "ingress" not in deny[0]["spec"]
    assert deny[0]["spec"]["policyTypes"] == ["Ingress"]
    by_target = {
        tuple(p["spec"]["podSelector"].get("matchLabels", {}).items()): p for p in found.values()
    }
    ray_pod = {RAY_CLUSTER_LABEL: k8s_one("RayCluster")["metadata"]["name"]}
    worker_pod = pod_spec_labels(WORKER_DEPLOYMENT)
    stranger = {"app.kubernetes.io/name": "somebody-else"}
    ray = by_target[tuple(ray_pod.items())]
    assert ingress_ports(ray, ray_pod) is None  # Ray nodes talk to each other freely
    assert ingress_ports(ray, worker_pod) == {10001}  # the Ray client port, nothing else
    assert ingress_ports(ray, stranger) == set()
    qdrant = by_target[(("app.kubernetes.io/name", "qdrant"),)]
    assert ingress_ports(qdrant, ray_pod) == {6333}
    assert ingress_ports(qdrant, stranger) == set()


def pod_spec_labels(deployment: str) -> dict[str, str]:
    labels: dict[str, str] = k8s_one("Deployment", deployment)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_kubernetes_qdrant_serves_https_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    statefulset = k8s_one("StatefulSet", "qdrant")
    qdrant = container(statefulset, "qdrant")
    env = env_of(qdrant)
    assert env["QDRANT__SERVICE__ENABLE_TLS"] == "true"
    assert "secretKeyRef" in env["QDRANT__SERVICE__API_KEY"]
    for name in ("QDRANT__TLS__CERT", "QDRANT__TLS__KEY"):
        assert mounted_secret(pod_spec(statefulset), qdrant, env[name]) == "streamrec-qdrant-tls"
    for probe in ("readinessProbe", "livenessProbe"):
        assert qdrant[probe]["httpGet"]["scheme"] == "HTTPS"
    data = configmap_data()
    settings = settings_from({**data, "STREAMREC_STORE__API_KEY": "k"}, monkeypatch)
    assert settings.store.url.startswith("https://")
    deployment = k8s_one("Deployment", WORKER_DEPLOYMENT)
    ca = str(settings.store.ca_file)
    worker = container(deployment, "worker")
    assert mounted_secret(pod_spec(deployment), worker, ca) == "streamrec-qdrant-tls"
    (ca_volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "qdrant-ca"]
    assert [i["key"] for i in ca_volume["secret"]["items"]] == ["ca.crt"]  # not the key


def test_compose_qdrant_needs_its_key_and_serves_https(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    qdrant = services["qdrant"]["environment"]
    assert qdrant["QDRANT__SERVICE__ENABLE_TLS"] == "true"
    assert qdrant["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")
    mounts = services["qdrant"]["volumes"]
    for name in ("QDRANT__TLS__CERT", "QDRANT__TLS__KEY"):
        assert any(m.endswith(f":{qdrant[name]}:ro") for m in mounts), name
    worker = services[WORKER_SERVICE]
    env = worker["environment"]
    assert env["STREAMREC_STORE__API_KEY"] == qdrant["QDRANT__SERVICE__API_KEY"]
    settings = settings_from(env, monkeypatch)
    assert settings.store.url.startswith("https://")
    assert any(m.endswith(f":{settings.store.ca_file}:ro") for m in worker["volumes"])


def test_compose_ray_processes_share_one_token() -> None:
    services = compose()["services"]
    tokens = {
        name: services[name]["environment"].get("RAY_AUTH_TOKEN")
        for name in ("ray-head", "ray-worker", WORKER_SERVICE)
    }
    assert len(set(tokens.values())) == 1
    assert next(iter(tokens.values())).startswith("${RAY_AUTH_TOKEN:?")
    for name in tokens:
        assert services[name]["environment"]["RAY_AUTH_MODE"] == "token"
