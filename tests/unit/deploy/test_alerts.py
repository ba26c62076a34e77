"""deploy/prometheus-alerts.yml: loaded by the Prometheus of compose, about series a worker
exports, each rule complete. No Prometheus runs here (no promtool either): the queries
are checked for the names they use and their brackets, not evaluated."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.unit.deploy.helpers import DEPLOY, SERIES, compose, exported

ALERTS = DEPLOY / "prometheus-alerts.yml"
DURATION = re.compile(r"^\d+[smhd]$")
RANGE = re.compile(r"\[([^\]]*)\]")
GROUPED_BY = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
LABEL_USED = re.compile(r"\$labels\.([a-z_]+)")
AGGREGATION = re.compile(r"\b(?:sum|avg|min|max|count)\b")
PAIRS = {")": "(", "]": "[", "}": "{"}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def balanced(expr: str) -> bool:
    """Brackets of every kind open and close in order (quoted strings skipped)."""
    stack: list[str] = []
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in PAIRS and (not stack or stack.pop() != PAIRS[char]):
            return False
    return not stack


def test_compose_mounts_the_rules_where_prometheus_reads_them() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
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
    job = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    asked = {name for rule in rules() for name in SERIES.findall(rule["expr"])}
    assert asked and asked <= exported(), sorted(asked - exported())
    jobs = {j for rule in rules() for j in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert jobs == {job["job_name"]}


def test_the_queries_are_well_formed_as_far_as_can_be_seen_here() -> None:
    for rule in rules():
        expr = rule["expr"]
        assert balanced(expr), rule["alert"]
        for window in RANGE.findall(expr):
            assert all(DURATION.match(part) for part in window.split(":")), (rule["alert"], window)


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


def test_the_checks_above_can_fail() -> None:
    assert not balanced("sum(rate(x[5m])")
    assert not balanced("sum(rate(x[5m)))")
    assert balanced('up{job="a(b"} == 0')
    assert not SERIES.findall("up == 0")
    assert "streamrec_no_such_series_total" not in exported()
