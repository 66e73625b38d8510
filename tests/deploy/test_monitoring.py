"""The monitoring the project ships: Prometheus alerting rules, checked and unit-tested with
promtool (a trigger campaign fires the alert, honest traffic does not), and the Grafana
dashboard, whose queries must name metrics the service exports. Fast tier: no service."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from app.api.metrics import REGISTRY
from tests.support.service import ROOT

pytestmark = pytest.mark.fast

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "badnet-filter.json"
METRIC = re.compile(r"\b(?:[a-z_]+:)?badnet_filter[a-z0-9_:]*")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _exported() -> set[str]:
    """Every series name the service's registry can export."""
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def _recorded() -> set[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {r["record"] for group in rules["groups"] for r in group["rules"] if "record" in r}


def test_alert_rules_are_valid() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", "alerts.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_burst_of_flags_fires_the_alert_and_honest_traffic_does_not() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_read_only_exported_metrics() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    expressions = [r["expr"] for group in yaml.safe_load(text)["groups"] for r in group["rules"]]
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert used and used <= _exported() | _recorded(), used - _exported() - _recorded()


def test_dashboard_loads_and_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [t for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 6 and all(panel["targets"] for panel in dashboard["panels"])
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queries = [t["expr"] for t in targets]
    queries += [
        v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if "query" in v and isinstance(v["query"], dict)
    ]
    used = {name for query in queries for name in METRIC.findall(query)}
    missing = used - _exported() - _recorded()
    assert not missing, f"the dashboard queries metrics nobody exports: {sorted(missing)}"
    expected = {
        "badnet_filter_images_flagged_total",
        "badnet_filter_images_overruled_total",
        "badnet_filter_request_seconds_bucket",
    }
    assert expected <= used
