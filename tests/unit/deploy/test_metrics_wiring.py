"""The metrics side of deploy/: Prometheus scrapes the port the workers serve, and the
Grafana dashboard asks only for series a worker exports."""

from __future__ import annotations

import json

from streams.settings import MetricsConfig
from tests.unit.deploy.helpers import (
    DEPLOY,
    K8S,
    SERIES,
    WORKER_DEPLOYMENT,
    compose,
    exported,
    load_all,
    prometheus,
)

PORT = MetricsConfig().port


def test_the_dashboard_asks_only_for_exported_series() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "streamrec.json").read_text())
    asked = {
        m for p in dashboard["panels"] for t in p["targets"] for m in SERIES.findall(t["expr"])
    }
    assert asked and asked <= exported(), sorted(asked - exported())


def test_prometheus_scrapes_the_workers_metrics_port() -> None:
    config = prometheus()
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert sd["port"] == PORT and sd["names"] == ["worker"]
    services = compose()["services"]
    assert "worker" in services and "prometheus" in services


def test_the_k8s_workers_are_annotated_for_scraping() -> None:
    (deployment,) = [
        d
        for d in load_all(K8S / "streamrec-workers.yaml")
        if d.get("kind") == "Deployment" and d["metadata"]["name"] == WORKER_DEPLOYMENT
    ]
    pod = deployment["spec"]["template"]
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/port"] == str(PORT)
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "worker"]
    assert {"name": "metrics", "containerPort": PORT} in container["ports"]
