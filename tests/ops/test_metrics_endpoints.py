"""``/metrics`` of the worker and of the API parse with Prometheus' own parser and hold the
metrics the ops issue lists, with values that follow from the traffic sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recommender.adapters.metrics import API_METRICS, WORKER_METRICS
from recommender.core.settings import Settings
from tests.api.support import MODEL_VERSION
from tests.ops.conftest import events, produce, produce_raw
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str) -> Samples:
    """Sample name -> [(labels, value)], parsed by prometheus_client's text parser."""
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        v for have, v in samples.get(name, []) if all(have.get(k) == x for k, x in labels.items())
    )


def exported(samples: Samples, name: str) -> bool:
    return any(s == name or s.startswith(name.removesuffix("_total")) for s in samples)


async def test_worker_and_api_metrics_after_traffic(
    isolated: Settings,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
    api_server: Callable[..., ApiProcess],
) -> None:
    settings = isolated.model_copy(update={"lag_refresh_s": 0.5})
    proc = worker(settings)
    good = events(300, users=30)
    await produce(settings, good)
    await produce_raw(settings, [(b"u-1", b"not json")] * 4 + [(None, b'{"type": "search"}')])
    await caught_up(settings, proc)

    url = f"http://127.0.0.1:{proc.settings.worker_web_port}/metrics"
    deadline = time.monotonic() + 20
    while True:  # the lag gauges follow Kafka every lag_refresh_s
        w = scrape(url)
        lag = [v for _, v in w.get("zmot_consumer_lag_messages", [])]
        if len(lag) == settings.topic_partitions and not any(lag):
            break
        assert time.monotonic() < deadline, lag
        await asyncio.sleep(0.3)

    for name in WORKER_METRICS:
        assert exported(w, name), name
    searches = sum(1 for e in good if e.type == "search")
    assert value(w, "zmot_events_consumed_total") == 305
    assert value(w, "zmot_events_consumed_total", type="search") == searches
    assert value(w, "zmot_events_consumed_total", type="invalid") == 5
    assert value(w, "zmot_events_applied_total") == 300
    assert value(w, "zmot_events_applied_total", type="page_view") == 300 - searches
    assert value(w, "zmot_events_dead_lettered_total", type="invalid") == 5
    assert value(w, "zmot_events_replayed_total") == 0
    assert value(w, "zmot_batch_size_messages_sum") == 305
    batches = value(w, "zmot_batch_size_messages_count")
    assert 1 <= batches <= 305
    assert value(w, "zmot_batch_processing_seconds_count") == batches
    assert 0 < value(w, "zmot_batch_processing_seconds_sum") < 60
    # Every applied event has a freshness; they were produced moments ago.
    assert value(w, "zmot_event_freshness_seconds_count") == 300
    assert 0 < value(w, "zmot_event_freshness_seconds_sum") / 300 < 30
    assert value(w, "zmot_event_freshness_seconds_bucket", le="60.0") == 300
    assert value(w, "zmot_record_freshness_seconds_count") == 300
    assert value(w, "zmot_record_freshness_seconds_bucket", le="60.0") == 300
    assert value(w, "zmot_consumer_lag_seconds") == 0
    assert value(w, "zmot_redis_errors_total") == 0

    api = api_server(settings, worker_web_port=proc.settings.worker_web_port)
    fallbacks = served = 0
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for user in ("u-1", "u-2", "nobody"):
            answer = client.get(
                "/v1/next-best-offer", params={"user_id": user, "k": 2, "placement": "home"}
            )
            assert answer.status_code == 200, answer.text
            fallbacks += answer.json()["fallback"]
            served += len(answer.json()["offers"])
        assert client.get("/v1/next-best-offer", params={"user_id": "u-3"}).status_code == 200
        assert client.get("/healthz").status_code == 200
    a = scrape(f"{api.url}/metrics")
    for name in API_METRICS:
        assert exported(a, name), name
    nbo = "/v1/next-best-offer"
    latency = "zmot_http_request_duration_seconds"
    assert value(a, f"{latency}_count", endpoint=nbo, placement="home") == 3
    assert value(a, f"{latency}_count", endpoint=nbo, placement="none") == 1
    assert value(a, f"{latency}_count", endpoint="/healthz") == 1
    assert 0 < value(a, f"{latency}_sum", endpoint=nbo) < 10
    assert value(a, "zmot_http_requests_total", endpoint=nbo, status="2xx") == 4
    assert fallbacks >= 1  # "nobody" has no profile
    assert value(a, "zmot_fallbacks_total", placement="home") == fallbacks
    assert value(a, "zmot_offers_served_total", placement="home") == served > 0
    assert value(a, "zmot_model_info", version=MODEL_VERSION) == 1
    assert value(a, "zmot_offer_catalog_info") == 4  # the test catalog: one offer per item
    assert value(a, "zmot_offer_profile_age_seconds_count") == 3  # the three known users
    assert 0 < value(a, "zmot_offer_profile_age_seconds_sum") / 3 < 60
    assert len(a["zmot_consumer_lag_messages"]) == settings.topic_partitions
    assert value(a, "zmot_consumer_lag_messages") == 0
    assert value(a, "zmot_redis_errors_total") == 0
