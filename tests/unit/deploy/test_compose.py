"""The compose file: dependencies, worker settings, replicas and topics.

Nothing here starts Docker or Kubernetes (see helpers.py)."""

from __future__ import annotations

import pytest

from tests.unit.deploy.helpers import (
    TOPIC_VARS,
    WORKER_SERVICE,
    compose,
    compose_deps,
    host_of,
    script_of,
    settings_from,
)

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
