"""The Grafana dashboard and the Prometheus config and alert rules are well formed and only use
metrics zmot exports (``promtool check`` too when it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from recommender.adapters.metrics import API_METRICS, EXPERIMENT_METRICS, WORKER_METRICS

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "infra" / "prometheus"
GRAFANA = ROOT / "infra" / "grafana"
DURATION = re.compile(r"^\d+[smhd]$")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_series() -> set[str]:
    names = set(WORKER_METRICS) | set(API_METRICS) | set(EXPERIMENT_METRICS)
    return names | {n + s for n in names for s in HISTOGRAM_SUFFIXES if not n.endswith("_total")}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bzmot_[a-z0-9_]+", expr))


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "zmot.json").read_text())
    return data


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_dashboard_panels_are_well_formed_and_use_exported_metrics() -> None:
    dash = dashboard()
    assert dash["uid"] == "zmot" and dash["title"] and dash["panels"]
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"]["uid"] == datasource["uid"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            used |= names
    assert used <= exported_series(), used - exported_series()
    titles = " ".join(panel["title"].lower() for panel in dash["panels"])
    for topic in ("lag", "freshness", "throughput", "latency", "errors"):
        assert topic in titles, topic


def test_recording_rules_are_named_by_convention_and_use_exported_metrics() -> None:
    records = [rule for rule in rules() if "record" in rule]
    names = [rule["record"] for rule in records]
    assert len(names) == len(set(names))
    assert {"zmot:experiment_ctr:1h", "zmot:experiment_conversion_rate:1h"} <= set(names)
    for rule in records:
        assert re.match(r"^zmot:[a-z_]+:[0-9a-z]+$", rule["record"]), rule
        used = metric_names(rule["expr"])
        assert used and used <= exported_series(), (rule["record"], used - exported_series())


def test_alert_rules_are_well_formed_and_use_exported_metrics() -> None:
    all_rules = [rule for rule in rules() if "alert" in rule]
    names = [rule["alert"] for rule in all_rules]
    assert len(names) == len(set(names))
    for rule in all_rules:
        assert DURATION.match(rule["for"]), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        used = metric_names(rule["expr"])
        assert used and used <= exported_series(), (rule["alert"], used - exported_series())
    exprs = {rule["alert"]: rule["expr"] for rule in all_rules}
    assert "deriv(zmot_consumer_lag_messages" in exprs["ZmotConsumerLagGrowing"]
    # from the record: a replay of old history must not fire it
    assert "zmot_record_freshness_seconds_bucket" in exprs["ZmotFreshnessP99High"]
    assert "zmot_events_dead_lettered_total" in exprs["ZmotDeadLetters"]
    assert "zmot_http_request_duration_seconds_bucket" in exprs["ZmotApiLatencyP99High"]


def test_prometheus_scrapes_the_compose_services_and_loads_the_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(compose["prometheus"]["volumes"])
    for path in config["rule_files"]:
        assert path in mounts
    jobs = config["scrape_configs"]
    targets = {t for job in jobs for static in job["static_configs"] for t in static["targets"]}
    api_port = compose["api"]["environment"]["ZMOT_API_PORT"]
    worker_port = compose["worker"]["environment"]["ZMOT_WORKER_WEB_PORT"]
    assert targets == {f"api:{api_port}", f"worker:{worker_port}"}
    assert compose["worker"]["environment"]["ZMOT_WORKER_WEB_HOST"] == "0.0.0.0"
    for name in ("prometheus", "grafana"):
        image = compose[name]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name} image not pinned: {image}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_config_and_rules() -> None:
    for args in (
        ["check", "rules", str(PROMETHEUS / "alerts.yml")],
        ["test", "rules", str(PROMETHEUS / "rules_test.yml")],  # the experiment rules' figures
    ):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
