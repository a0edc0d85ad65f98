"""Prometheus rules and the Grafana dashboard reference only metrics the code registers.

Metric definitions are read from the source of streams/ and sinks/ (every prometheus_client
``Counter``/``Gauge``/``Histogram``/``Summary`` call, with its label names); expressions are
parsed with a real PromQL parser, so a typo in a metric, a label or the syntax fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

promql = pytest.importorskip("promql_parser", reason="dev dependency promql-parser")

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "personaflow.json"
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"

TEAM_METRICS = {
    "personaflow_events_total", "personaflow_decode_errors_total",
    "personaflow_dead_letters_total", "personaflow_transitions_total",
    "personaflow_triggers_total", "personaflow_event_to_trigger_seconds",
    "personaflow_deadline_lag_seconds", "personaflow_table_customers",
    "personaflow_sends_total", "personaflow_esp_request_seconds",
    "personaflow_esp_retries_total", "personaflow_esp_errors_total",
    "personaflow_trigger_to_accept_seconds", "personaflow_sink_dead_letters_total",
}  # fmt: skip
"""The names dashboards and alerts were agreed on (team rules)."""

EXTERNAL = {
    "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},  # danielqsj/kafka-exporter
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
    "up": set(),  # Prometheus itself
}
TARGET_LABELS = {"job", "instance"}
"""Labels Prometheus adds to every scraped series."""

_KINDS = {"Counter", "Gauge", "Histogram", "Summary"}


def _labels(call: ast.Call) -> set[str]:
    node = call.args[2] if len(call.args) > 2 else None
    for keyword in call.keywords:
        if keyword.arg == "labelnames":
            node = keyword.value
    if isinstance(node, ast.List | ast.Tuple):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        return {value for value in values if isinstance(value, str)}
    return set()


def _exposed(kind: str, name: str) -> list[str]:
    if kind == "Counter":
        return [f"{name.removesuffix('_total')}_total"]
    if kind == "Histogram":
        return [name, *(f"{name}_{s}" for s in ("bucket", "sum", "count"))]
    if kind == "Summary":
        return [name, f"{name}_sum", f"{name}_count"]
    return [name]


def registered_metrics() -> dict[str, set[str]]:
    """Exposed series name -> label names, for every metric defined in streams/ and sinks/."""
    found: dict[str, set[str]] = {}
    for path in [*(ROOT / "streams").rglob("*.py"), *(ROOT / "sinks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if kind in _KINDS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                for series in _exposed(kind, first.value):
                    bucket = {"le"} if series.endswith("_bucket") else set()
                    found[series] = _labels(node) | bucket
    return found


def selectors(expr: Any) -> tuple[list[tuple[str, set[str]]], list[set[str]]]:
    """(metric name, matcher labels) of every selector, and the label sets of every
    ``by (...)`` grouping, in a parsed PromQL expression."""
    found: list[tuple[str, set[str]]] = []
    groups: list[set[str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            found.append((node.name or "", {m.name for m in node.matchers.matchers}))
        elif isinstance(node, promql.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql.AggregateExpr):
            if node.modifier is not None and str(node.modifier).startswith("by"):
                groups.append(set(node.modifier.labels))
            walk(node.expr)
        elif hasattr(node, "expr"):  # ParenExpr, UnaryExpr, SubqueryExpr
            walk(node.expr)

    walk(expr)
    return found, groups


def check_expression(text: str, known: dict[str, set[str]], where: str) -> set[str]:
    """Parse ``text`` and check its metric and label names; returns the metric names."""
    expr = promql.parse(text.replace("$__rate_interval", "5m"))
    found, groups = selectors(expr)
    assert found, f"{where}: no metric in {text}"
    labels: set[str] = set(TARGET_LABELS)
    for name, matched in found:
        assert name in known, f"{where}: {name} is not registered by the code"
        assert matched <= known[name] | TARGET_LABELS, f"{where}: {name} has no {matched}"
        labels |= known[name]
    for group in groups:
        assert group <= labels, f"{where}: grouping by {group - labels} (not a label)"
    return {name for name, _ in found}


@pytest.fixture(scope="module")
def known() -> dict[str, set[str]]:
    return registered_metrics() | EXTERNAL


def test_code_registers_the_agreed_metric_names():
    registered = registered_metrics()
    missing = {name for name in TEAM_METRICS if name not in registered}
    assert not missing, f"metrics in the team list but not in streams/ or sinks/: {missing}"
    assert registered["personaflow_events_total"] == {"type"}
    assert registered["personaflow_sends_total"] == {
        "outcome", "trigger_type", "persona", "variant"}  # fmt: skip


def test_alert_rules_are_valid_and_reference_registered_metrics(known):
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    used: set[str] = set()
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]) and rule["labels"]["severity"] in (
            "info", "warning", "critical")  # fmt: skip
        assert rule["annotations"]["summary"]
        used |= check_expression(rule["expr"], known, rule["alert"])
    names = {rule["alert"] for rule in alerts}
    assert len(names) == len(alerts), "duplicate alert names"
    for needed in (
        "kafka_consumergroup_lag_sum",
        "personaflow_dead_letters_total",
        "personaflow_deadline_lag_seconds_bucket",
        "personaflow_esp_errors_total",
    ):
        assert needed in used, f"no alert on {needed}"  # fmt: skip


def test_alert_runbooks_point_at_sections_of_the_operations_guide():
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines() if line.startswith("#")
    }  # fmt: skip
    rules = yaml.safe_load(ALERTS.read_text())
    for rule in (r for group in rules["groups"] for r in group["rules"]):
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in headings, rule["alert"]


def test_expression_check_catches_mistakes(known):
    with pytest.raises(AssertionError, match="not registered"):
        check_expression("rate(personaflow_event_total[5m])", known, "typo")
    with pytest.raises(AssertionError, match="has no"):
        check_expression('personaflow_sends_total{outcom="sent"}', known, "label")
    with pytest.raises(AssertionError, match="grouping"):
        check_expression("sum by (esp) (rate(personaflow_events_total[5m]))", known, "by")
    with pytest.raises(ValueError):
        check_expression("sum(rate(personaflow_events_total[5m])", known, "syntax")


def test_dashboard_panels_query_registered_metrics(known):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    used: set[str] = set()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= check_expression(target["expr"], known, panel["title"])
    wanted = TEAM_METRICS - {"personaflow_event_to_trigger_seconds",
                             "personaflow_deadline_lag_seconds",
                             "personaflow_esp_request_seconds",
                             "personaflow_trigger_to_accept_seconds"}  # fmt: skip
    histograms = {f"{name}_bucket" for name in TEAM_METRICS - wanted}
    assert wanted | histograms <= used, f"no panel for {(wanted | histograms) - used}"


def test_grafana_datasource_matches_dashboard_uid():
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert (source["uid"], source["type"]) == ("prometheus", "prometheus")
    [provider] = yaml.safe_load((provisioning / "dashboards" / "personaflow.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_metrics_reference_documents_every_registered_metric():
    text = METRICS_DOC.read_text()
    for name in registered_metrics():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{base}`" in text or f"`{name}`" in text, f"docs/metrics.md misses {name}"
