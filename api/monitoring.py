"""The API's observability: request metrics middleware, lag read from Kafka, the ops summary.

Everything here hangs off one :class:`Ops` object per app (``app.state.ops``), so two apps in
one process (tests) never share a metric. Lag readings are cached for ``lag_refresh_s`` and
kept for :data:`HISTORY_S`, so ``/metrics`` scrapes, ``/ops/lag`` and the ops page together
cause at most one Kafka read per interval, and a freshly opened ops page still draws the last
minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

import httpx

from api.engine import Engine
from recommender.adapters.kafka import kafka_auth, read_lag, topic_message_count
from recommender.adapters.metrics import (
    ApiMetrics,
    counter_value,
    histogram_buckets,
    parse_exposition,
)
from recommender.core.feedback import OfferStats
from recommender.core.ops import bucket_delta, histogram_quantile
from recommender.core.settings import Settings, redact_url

logger = logging.getLogger("zmot.api")

HISTORY_S = 900.0
"""How far back the ops page's lag chart reaches (lag readings kept in memory)."""

WINDOW_S = 300.0
"""Quantiles on the ops page are over the last five minutes (since start until then)."""

WORKER_SCRAPE_TIMEOUT_S = 1.0

ARM_REFRESH_S = 5.0
"""Longest reuse of the per-arm counters read from Redis for ``/metrics``."""

LAG_SECONDS_LIMIT = 60.0
"""Health turns red when the oldest unprocessed event is older than this."""

FRESHNESS_P99_LIMIT_S = 10.0
LATENCY_P99_LIMIT_S = 0.1
"""Thresholds that colour a figure amber on the ops page (the alert rules use the same)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request by route template and placement."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            placement = None
            query = scope.get("query_string", b"")
            if b"placement=" in query:
                placement = parse_qs(query.decode("latin-1")).get("placement", [None])[0]
            metrics = self.metrics
            label = metrics.placement_label(placement)
            metrics.child(metrics.latency, endpoint, label).observe(time.perf_counter() - started)
            metrics.child(metrics.requests, endpoint, f"{status[0] // 100}xx").inc()


class Ops:
    """Per-app metrics, the cached lag reading and its history, and the worker scrape."""

    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ApiMetrics()
        self.group = settings.consumer_group
        """The consumer group whose lag is read: the live profile generation's (set by the
        model switch when a rebuilt generation goes live)."""
        self._lock = asyncio.Lock()
        self._lag: dict[str, Any] | None = None
        self._lag_at = 0.0
        self._dlq: int | None = None
        self.history: deque[tuple[float, dict[str, Any]]] = deque()
        self._snapshots: dict[str, deque[tuple[float, list[tuple[float, float]]]]] = {}

    def engine_loaded(self, engine: Engine) -> None:
        """Publish the versions of the engine now serving (at start and after a reload)."""
        self.metrics.set_versions(engine.model_version, engine.catalog_version, engine.n_offers)
        self.metrics.set_placements(engine.arbiter.placements.by_name)
        self.metrics.set_arms((e.name, a.name) for e in engine.experiments.items for a in e.arms)

    def observe_answer(self, answer: Any, profile: Any) -> None:
        """Count one next-best-offer answer (offers, fallback) and the age of its profile."""
        self.metrics.observe_offers(
            [offer.offer_id for offer in answer.offers],
            placement=answer.placement,
            fallback=bool(answer.fallback),
            profile_ts=getattr(profile, "last_ts", None),
        )

    async def lag(self) -> dict[str, Any]:
        """The lag document, read from Kafka at most every ``lag_refresh_s`` seconds."""
        async with self._lock:
            now = time.time()
            if self._lag is None or now - self._lag_at >= self.settings.lag_refresh_s:
                s = self.settings
                try:
                    auth = kafka_auth(s)
                    document = await read_lag(
                        s.kafka_bootstrap, self.group, s.events_topic, auth=auth
                    )
                    self._dlq = await topic_message_count(s.kafka_bootstrap, s.dlq_topic, auth=auth)
                except Exception:
                    self.metrics.lag_read_errors.inc()
                    raise
                self._lag, self._lag_at = document, now
                self.metrics.set_lag(document)
                self.history.append((now, document))
                while self.history and self.history[0][0] < now - HISTORY_S:
                    self.history.popleft()
            return self._lag

    async def refresh_arms(self, feedback: Any, experiments: Any) -> None:
        """Read every running experiment's attributed per-arm counters from Redis into the
        ``zmot_experiment_*_total`` metrics, at most every :data:`ARM_REFRESH_S` seconds (a
        scrape, not every request, pays one pipelined read per experiment)."""
        arms = self.metrics.arms
        now = time.time()
        if now - arms.read_at < ARM_REFRESH_S and arms.figures:
            return
        figures = {}
        for experiment in experiments.items:
            names = [a.name for a in experiment.arms]
            for f in await feedback.arm_figures(experiment.name, names):
                figures[(experiment.name, f.arm)] = f
        arms.set(figures, now)

    async def worker_families(self) -> tuple[dict[str, Any] | None, str | None]:
        """The worker's metrics, parsed, or None and the reason it could not be read."""
        url = self.settings.worker_metrics_address
        try:
            async with httpx.AsyncClient(timeout=WORKER_SCRAPE_TIMEOUT_S) as client:
                response = await client.get(url)
                response.raise_for_status()
            return parse_exposition(response.text), None
        except (httpx.HTTPError, ValueError) as exc:
            # Shown on /ops: the URL without a password (httpx's message may hold the URL too).
            shown = redact_url(url)
            return None, f"{shown}: {type(exc).__name__}: {str(exc).replace(url, shown)}"

    def windowed_quantiles(
        self, name: str, buckets: list[tuple[float, float]], now: float
    ) -> dict[str, float | None]:
        """p50/p99 of the observations of the last :data:`WINDOW_S` (since the first look)."""
        snapshots = self._snapshots.setdefault(name, deque())
        while snapshots and snapshots[0][0] < now - WINDOW_S:
            snapshots.popleft()
        recent = bucket_delta(buckets, snapshots[0][1]) if snapshots else buckets
        snapshots.append((now, buckets))
        count = recent[-1][1] if recent else 0.0
        if count <= 0:  # nothing in the window: the figures since start say more than nothing
            recent = buckets
        return {
            "p50": histogram_quantile(0.5, recent),
            "p99": histogram_quantile(0.99, recent),
            "count": recent[-1][1] if recent else 0.0,
        }

    async def summary(
        self,
        model_version: str | None,
        redis_ok: bool,
        offers: Mapping[str, OfferStats] | None = None,
    ) -> dict[str, Any]:
        """What the ops page shows besides the lag table: rates, quantiles, versions, health.

        ``offers`` are the active offers' impression, click and dismissal counts over all users
        (the worker's feedback counters), shown with their click rate.
        """
        now = time.time()
        lag_error = None
        try:
            lag = await self.lag()
        except Exception as exc:  # noqa: BLE001 - the page must show Kafka being down
            lag, lag_error = None, f"{type(exc).__name__}: {exc}"
        families, worker_error = await self.worker_families()
        worker: dict[str, Any] = {"up": families is not None, "error": worker_error}
        if families is not None:
            worker.update(
                consumed_total=counter_value(families, "zmot_events_consumed"),
                applied_total=counter_value(families, "zmot_events_applied"),
                dead_lettered_total=counter_value(families, "zmot_events_dead_lettered"),
                freshness_seconds=self.windowed_quantiles(
                    "worker_freshness",
                    histogram_buckets(families, "zmot_record_freshness_seconds"),
                    now,
                ),
                event_freshness_seconds=self.windowed_quantiles(
                    "worker_event_freshness",
                    histogram_buckets(families, "zmot_event_freshness_seconds"),
                    now,
                ),
            )
        own = parse_exposition(self.metrics.render()[0].decode())
        api = {
            "latency_seconds": self.windowed_quantiles(
                "api_latency", histogram_buckets(own, "zmot_http_request_duration_seconds"), now
            ),
            "profile_age_seconds": self.windowed_quantiles(
                "api_profile_age", histogram_buckets(own, "zmot_offer_profile_age_seconds"), now
            ),
            "fallbacks_total": counter_value(own, "zmot_fallbacks"),
            "redis_errors_total": counter_value(own, "zmot_redis_errors"),
        }
        rates = self.rates()
        checks = {
            "redis": redis_ok,
            "model": bool(model_version),
            "kafka": lag is not None,
            "worker": worker["up"],
            "lag": lag is not None and float(lag["max_lag_seconds"]) <= LAG_SECONDS_LIMIT,
        }
        return {
            "time": now,
            "model_version": model_version,
            "lag": lag,
            "lag_error": lag_error,
            "dlq_messages": self._dlq,
            "events_per_second": rates["consumed"],
            "produced_per_second": rates["produced"],
            "worker": worker,
            "api": api,
            "offers": None
            if offers is None
            else {
                offer_id: {**asdict(stats), "click_rate": stats.click_rate}
                for offer_id, stats in offers.items()
            },
            "limits": {
                "lag_seconds": LAG_SECONDS_LIMIT,
                "freshness_p99_seconds": FRESHNESS_P99_LIMIT_S,
                "latency_p99_seconds": LATENCY_P99_LIMIT_S,
            },
            "health": {"ok": all(checks.values()), "checks": checks},
            "lag_history": [
                {
                    "t": round(t, 3),
                    "partitions": {
                        str(row["partition"]): [row["lag"], row["lag_seconds"]]
                        for row in doc["partitions"]
                    },
                }
                for t, doc in self.history
            ],
        }

    def rates(self, span_s: float = 30.0) -> dict[str, float | None]:
        """Messages/s processed (committed) and produced (end offsets), over the last readings."""
        if len(self.history) < 2:
            return {"consumed": None, "produced": None}
        t1, new = self.history[-1]
        t0, old = next(((t, d) for t, d in self.history if t >= t1 - span_s), self.history[0])
        if t0 >= t1:
            t0, old = self.history[-2]
        dt = t1 - t0

        def totals(doc: dict[str, Any]) -> tuple[int, int]:
            ends = sum(int(r["end_offset"]) for r in doc["partitions"])
            return ends - int(doc["total_lag"]), ends

        (done0, end0), (done1, end1) = totals(old), totals(new)
        consumed, produced = (done1 - done0) / dt, (end1 - end0) / dt
        return {"consumed": max(0.0, consumed), "produced": max(0.0, produced)}
