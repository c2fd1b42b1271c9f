"""JSON log lines carry the Kafka address of a message; metric names follow Prometheus rules."""

from __future__ import annotations

import json
import logging
import re

from prometheus_client.parser import text_string_to_metric_families

from recommender.adapters.logs import JsonFormatter, message_fields
from recommender.adapters.metrics import API_METRICS, WORKER_METRICS, ApiMetrics, WorkerMetrics


def test_json_formatter_puts_extras_at_top_level() -> None:
    record = logging.LogRecord("zmot", logging.WARNING, "f.py", 1, "dead letter %s", ("a",), None)
    for key, value in message_fields("zmot.events", 3, 1234).items():
        setattr(record, key, value)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "dead letter a" and line["level"] == "WARNING"
    assert (line["topic"], line["partition"], line["offset"]) == ("zmot.events", 3, 1234)


def test_names_follow_prometheus_conventions_and_registries_are_separate() -> None:
    for name in (*WORKER_METRICS, *API_METRICS):
        assert re.fullmatch(r"zmot_[a-z_]+", name), name
        assert name.endswith(("_total", "_seconds", "_messages", "_info")), name
    a, b = ApiMetrics(), ApiMetrics()
    a.observe_offers(["o1"], placement="home", fallback=True, profile_ts=None)
    assert b.offers.collect()[0].samples == []
    worker = WorkerMetrics()
    worker.observe_batch(
        consumed=["search", "invalid"], applied=[("search", 90.0)], replayed=[],
        dead_lettered=["invalid"], seconds=0.01, written_at=100.0, size=2, record_times=[99.5],
    )  # fmt: skip
    families = {f.name: f for f in text_string_to_metric_families(worker.render()[0].decode())}
    freshness = {s.name: s.value for s in families["zmot_event_freshness_seconds"].samples}
    assert freshness["zmot_event_freshness_seconds_sum"] == 10.0
    record = {s.name: s.value for s in families["zmot_record_freshness_seconds"].samples}
    assert record["zmot_record_freshness_seconds_sum"] == 0.5


def test_placements_are_bounded() -> None:
    metrics = ApiMetrics()
    labels = {metrics.placement_label(f"p{i}") for i in range(100)}
    assert "other" in labels and len(labels) == 33
    assert metrics.placement_label(None) == "none"


def test_configured_placements_are_the_only_placement_labels() -> None:
    metrics = ApiMetrics()
    metrics.set_placements(["home", "cart"])
    assert metrics.placement_label("home") == "home"
    assert {metrics.placement_label(f"p{i}") for i in range(100)} == {"other"}
    assert metrics.placement_label("x\nzmot_fake_metric 1") == "other"


def test_observe_many_counts_what_one_observe_each_would() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from recommender.adapters.metrics import FRESHNESS_BUCKETS, observe_many

    values = [0.0, 0.01, 0.0100001, 0.3, 5.0, 86400.0, 1e9, 2.5, 2.5, 604800.0, 7.25]
    one, many = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "h", buckets=FRESHNESS_BUCKETS, registry=one)
    bulk = Histogram("h", "h", buckets=FRESHNESS_BUCKETS, registry=many)
    for value in values:
        each.observe(value)
    observe_many(bulk, values[:4])
    observe_many(bulk, [])
    observe_many(bulk, values[4:])
    samples = [(s.name, s.labels, s.value) for s in each.collect()[0].samples]
    got = [(s.name, s.labels, s.value) for s in bulk.collect()[0].samples]
    assert [s for s in got if not s[0].endswith("_created")] == [
        s for s in samples if not s[0].endswith("_created")
    ]
