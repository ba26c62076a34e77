"""deploy/prometheus-alerts.yml: loaded by the Prometheus of compose, about series a worker
exports, each rule complete. No Prometheus runs here (no promtool either): each query is
parsed by a PromQL parser (the promql-parser crate's Python binding) and checked for the
names it uses, not evaluated."""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest
import yaml

from tests.unit.deploy.helpers import DEPLOY, SERIES, compose, exported, prometheus

ALERTS = DEPLOY / "prometheus-alerts.yml"
DURATION = re.compile(r"^\d+[smhd]$")
GROUPED_BY = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
LABEL_USED = re.compile(r"\$labels\.([a-z_]+)")
AGGREGATION = re.compile(r"\b(?:sum|avg|min|max|count)\b")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_compose_mounts_the_rules_where_prometheus_reads_them() -> None:
    config = prometheus()
    mounts = compose()["services"]["prometheus"]["volumes"]
    (path,) = config["rule_files"]
    assert f"./{ALERTS.name}:{path}:ro" in mounts


def test_every_rule_is_complete_and_named_once() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(found) >= 5 and len(set(names)) == len(names)
    for rule in found:
        assert re.fullmatch(r"Streamrec[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
        assert DURATION.match(rule["for"]), rule
        assert rule["labels"]["severity"] in {"page", "warning"}, rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule


def test_the_rules_ask_only_for_exported_series_and_the_scraped_job() -> None:
    job = prometheus()["scrape_configs"][0]
    asked = {name for rule in rules() for name in SERIES.findall(rule["expr"])}
    assert asked and asked <= exported(), sorted(asked - exported())
    jobs = {j for rule in rules() for j in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert jobs == {job["job_name"]}


def test_every_query_parses_as_promql() -> None:
    for rule in rules():
        assert isinstance(promql_parser.parse(rule["expr"]), promql_parser.Expr), rule["alert"]


def test_an_aggregated_rule_names_only_labels_it_keeps() -> None:
    """A summary naming a label that a `sum` dropped would print nothing."""
    for rule in rules():
        used = set(LABEL_USED.findall(" ".join(rule["annotations"].values())))
        if AGGREGATION.search(rule["expr"]):
            kept = {
                label.strip()
                for group in GROUPED_BY.findall(rule["expr"])
                for label in group.split(",")
            }
            assert used <= kept, (rule["alert"], sorted(used - kept))


@pytest.mark.parametrize("bad", ["sum(rate(x[5m])", "sum by (le) rate(x[5m])", "x[5m:1x]"])
def test_the_parser_refuses_a_malformed_query(bad: str) -> None:
    with pytest.raises(ValueError):
        promql_parser.parse(bad)


def test_an_unexported_series_would_be_seen() -> None:
    assert not SERIES.findall("up == 0")
    assert "streamrec_no_such_series_total" not in exported()
