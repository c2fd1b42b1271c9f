"""The Prometheus metrics of the worker and the API, each in a registry of its own.

A registry per instance (not prometheus_client's global one) lets tests run several apps in one
process and keeps every exported name in this one file; :data:`WORKER_METRICS` and
:data:`API_METRICS` list them for the checks of the Grafana dashboard and the alert rules.

Label values are bounded: event types are the contract's (anything else is ``invalid``);
placements are the configured ones (placements.yaml), any other value counted as ``other``
(without a placements file, the first :data:`MAX_PLACEMENTS` distinct values, then ``other``),
because a caller-chosen label value would otherwise create one time series per typo or per
request of a caller who wants to exhaust the server's memory.

Several API processes on one port (``zmot api --workers N``) share one exposition: each writes
its values to files under ``PROMETHEUS_MULTIPROC_DIR`` (set by :func:`api.server.run_api`), and
whichever process answers a scrape renders all of them (:meth:`_Exported.render`): counters and
histograms summed over the processes, the info gauges per live process (a ``pid`` label), the lag
gauges as the largest value. One process (the default) renders its own registry.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from recommender.core.attribution import ArmFigures
from recommender.core.events import EventType
from recommender.core.privacy import WITHHELD_REASONS

FRESHNESS_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0,
)  # fmt: skip
"""Seconds: sub-second when the worker keeps up, up to a week for replayed history."""

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

EVENT_TYPES = frozenset(get_args(EventType))

MAX_PLACEMENTS = 32
"""Distinct placement label values kept per API process; later ones are counted as ``other``."""

LAG_METRICS = ("zmot_consumer_lag_messages", "zmot_consumer_lag_seconds")

WORKER_METRICS = (
    "zmot_events_consumed_total",
    "zmot_events_applied_total",
    "zmot_events_replayed_total",
    "zmot_events_dead_lettered_total",
    "zmot_batch_size_messages",
    "zmot_batch_processing_seconds",
    "zmot_event_freshness_seconds",
    "zmot_record_freshness_seconds",
    "zmot_profile_fence_conflicts_total",
    "zmot_redis_errors_total",
    "zmot_lag_read_errors_total",
    "zmot_worker_model_info",
    *LAG_METRICS,
)
"""Names the worker exports (histograms add ``_bucket``, ``_sum`` and ``_count`` series)."""

API_METRICS = (
    "zmot_http_request_duration_seconds",
    "zmot_http_requests_total",
    "zmot_offer_profile_age_seconds",
    "zmot_fallbacks_total",
    "zmot_offers_served_total",
    "zmot_model_info",
    "zmot_model_swaps_total",
    "zmot_offer_catalog_info",
    "zmot_redis_errors_total",
    "zmot_lag_read_errors_total",
    "zmot_decision_log_errors_total",
    *LAG_METRICS,
)
"""Names the API exports."""

EXPERIMENT_METRICS = (
    "zmot_experiment_answers_total",
    "zmot_experiment_impressions_total",
    "zmot_experiment_clicks_total",
    "zmot_experiment_dismissals_total",
    "zmot_experiment_carts_total",
    "zmot_experiment_conversions_total",
    "zmot_experiment_revenue_total",
)
"""Names the API exports while experiments run (one series per experiment and arm)."""


def multiprocess_dir() -> str | None:
    """Where the API processes of one port write their metric values (None: one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def leave_multiprocess() -> None:
    """Drop this process's live gauges from the shared metrics (at its exit), so that a
    stopped API process no longer shows a model version."""
    path = multiprocess_dir()
    if path is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


def event_type_label(kind: object) -> str:
    """The event type as a label value: one of the contract's types, else ``invalid``."""
    return kind if isinstance(kind, str) and kind in EVENT_TYPES else "invalid"


class _Exported:
    """A registry and its text exposition."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.shared: list[Collector] = []
        """Collectors whose values are the stack's, not this process's (rendered as they are
        when several processes share the exposition)."""

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus text format and its content type: of every process that
        shares ``PROMETHEUS_MULTIPROC_DIR`` when it is set (module doc), else this one's."""
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        for collector in self.shared:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def _lag_gauges(self) -> None:
        self.lag_messages = Gauge(
            "zmot_consumer_lag_messages",
            "Messages of the events topic not yet committed by the worker's group (from Kafka)",
            ["topic", "partition"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "zmot_consumer_lag_seconds",
            "Age of the oldest message the worker's group has not processed (from Kafka)",
            ["topic", "partition"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.lag_read_errors = Counter(
            "zmot_lag_read_errors_total",
            "Failed reads of the consumer lag from Kafka",
            registry=self.registry,
        )

    def set_lag(self, document: Mapping[str, Any]) -> None:
        """Set the lag gauges from a lag document (:func:`~recommender.core.ops.lag_document`)."""
        topic = str(document["topic"])
        for row in document["partitions"]:
            partition = str(row["partition"])
            self.lag_messages.labels(topic, partition).set(row["lag"])
            self.lag_seconds.labels(topic, partition).set(row["lag_seconds"])


class WorkerMetrics(_Exported):
    """What the stream worker counts: events by type and outcome, batches, freshness, lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.model_info = Gauge(
            "zmot_worker_model_info",
            "The model version whose profile math the worker applies (value 1; `none`: no "
            "model, the settings' profile math)",
            ["version"],
            registry=r,
        )
        self.model_info.labels("none").set(1)
        self.consumed = Counter(
            "zmot_events_consumed", "Messages read from the events topic", ["type"], registry=r
        )
        self.applied = Counter(
            "zmot_events_applied", "Events applied to a profile", ["type"], registry=r
        )
        self.replayed = Counter(
            "zmot_events_replayed",
            "Redelivered events skipped by the profile offset fence",
            ["type"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "zmot_events_dead_lettered",
            "Messages sent to the dead-letter topic (type 'invalid' when it could not be parsed)",
            ["type"],
            registry=r,
        )
        self.withheld = Counter(
            "zmot_events_withheld",
            "Events dropped for privacy: the person was erased after them, or refused profiling",
            ["reason"],
            registry=r,
        )
        for reason in WITHHELD_REASONS:
            self.withheld.labels(reason)
        self.batch_size = Histogram(
            "zmot_batch_size_messages", "Messages per batch", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "zmot_batch_processing_seconds",
            "Time to validate, apply and write one batch (Redis and dead letters included)",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "zmot_event_freshness_seconds",
            "Delay from an event's time to its profile update being written to Redis",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.record_freshness = Histogram(
            "zmot_record_freshness_seconds",
            "Delay from the Kafka record's timestamp (when zmot's producers sent it, or the "
            "broker's append time on a LogAppendTime topic) to the profile update being written: "
            "unlike event time, a replay of old history is fresh",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.conflicts = Counter(
            "zmot_profile_fence_conflicts",
            "Profile writes refused because another writer moved the offset fence",
            registry=r,
        )
        self.redis_errors = Counter(
            "zmot_redis_errors", "Redis errors (each retried batch attempt counts)", registry=r
        )
        self._lag_gauges()
        # Zero series for every type, so rates and alerts see a 0 rather than no data.
        for kind in sorted(EVENT_TYPES | {"invalid"}):
            for counter in (self.consumed, self.applied, self.replayed, self.dead_lettered):
                counter.labels(kind)

    def observe_batch(
        self,
        *,
        consumed: Iterable[str],
        applied: Iterable[tuple[str, float]],
        replayed: Iterable[str],
        dead_lettered: Iterable[str],
        seconds: float,
        written_at: float,
        size: int,
        withheld: Iterable[str] = (),
        record_times: Iterable[float] = (),
    ) -> None:
        """Record one finished batch: the type of each message per outcome, and for each
        applied event its time, whose distance to ``written_at`` is its freshness (and that of
        its Kafka record's timestamp, in ``record_times``).

        Counted per label and observed per bucket (:func:`observe_many`), not per event: one
        ``inc`` per event and type was a tenth of the worker's CPU."""
        applied = list(applied)
        for counter, kinds in (
            (self.consumed, consumed),
            (self.applied, (kind for kind, _ in applied)),
            (self.replayed, replayed),
            (self.dead_lettered, dead_lettered),
            (self.withheld, withheld),
        ):
            for kind, n in Tally(kinds).items():
                counter.labels(kind).inc(n)
        observe_many(self.freshness, [max(0.0, written_at - ts) for _, ts in applied])
        observe_many(self.record_freshness, [max(0.0, written_at - ts) for ts in record_times])
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


ARM_METRICS: tuple[tuple[str, str, str], ...] = (
    ("zmot_experiment_impressions", "impressions", "Impressions attributed to the arm"),
    ("zmot_experiment_clicks", "clicks", "Clicks attributed to the arm"),
    ("zmot_experiment_dismissals", "dismissals", "Dismissals attributed to the arm"),
    ("zmot_experiment_carts", "carts", "Carts of an offered item attributed to the arm"),
    ("zmot_experiment_conversions", "conversions", "Purchases of an offered item (conversions)"),
    ("zmot_experiment_revenue", "revenue", "Offer value of the arm's conversions"),
)
"""(metric name without ``_total``, :class:`ArmFigures` attribute, help) per arm counter."""


class ArmCounters(Collector):
    """The worker's attributed per-arm counters (in Redis, summed over partitions) as
    Prometheus counters ``zmot_experiment_*_total{experiment,arm}``, as last read.

    They are totals of the whole stack, replay-safe, not of this process: every API process
    exports the same values (aggregate them with ``max``, not ``sum``)."""

    def __init__(self) -> None:
        self.figures: dict[tuple[str, str], ArmFigures] = {}
        self.read_at = 0.0

    def set(self, figures: Mapping[tuple[str, str], ArmFigures], now: float) -> None:
        self.figures = dict(figures)
        self.read_at = now

    def collect(self) -> Iterable[Metric]:
        for name, attribute, help_text in ARM_METRICS:
            family = CounterMetricFamily(name, help_text, labels=["experiment", "arm"])
            for (experiment, arm), figures in sorted(self.figures.items()):
                family.add_metric([experiment, arm], float(getattr(figures, attribute)))
            yield family


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, with one increment per bucket.

    Uses the histogram's own bucket counters (``_upper_bounds``, ``_buckets``, ``_sum`` of
    prometheus_client 0.26, pinned); a test checks the exposition equals one observe each.
    """
    if not values:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe does
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)
    histogram._sum.inc(sum(values))


class ApiMetrics(_Exported):
    """What the API counts: latency per endpoint and placement, offers, fallbacks, freshness."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.latency = Histogram(
            "zmot_http_request_duration_seconds",
            "Time to answer a request, per route and placement",
            ["endpoint", "placement"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "zmot_http_requests", "Requests answered, per route and status", ["endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.profile_age = Histogram(
            "zmot_offer_profile_age_seconds",
            "Age (now minus its newest event time) of the profile a next-best-offer answer used",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "zmot_fallbacks", "Answers that fell back to popular offers", ["placement"], registry=r
        )
        self.offers = Counter(
            "zmot_offers_served", "Offers returned, per offer and placement",
            ["offer_id", "placement"], registry=r,
        )  # fmt: skip
        self.model_info = Gauge(
            "zmot_model_info",
            "The model being served (value 1)",
            ["version"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.decision_log_errors = Counter(
            "zmot_decision_log_errors_total",
            "Decisions not written to the decision log topic (broker down or too slow)",
            registry=self.registry,
        )
        self.model_swaps = Counter(
            "zmot_model_swaps", "Models swapped in without a restart", registry=r
        )
        self.experiment_answers = Counter(
            "zmot_experiment_answers",
            "Answers given inside an experiment, per experiment and arm",
            ["experiment", "arm"],
            registry=r,
        )
        self.catalog_info = Gauge(
            "zmot_offer_catalog_info",
            "The offer catalog being served (value = number of offers)",
            ["version"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.redis_errors = Counter(
            "zmot_redis_errors", "Requests that failed on a Redis error", registry=r
        )
        self.arms = ArmCounters()
        r.register(self.arms)
        self.shared.append(self.arms)
        self._versions: tuple[str, str] | None = None
        self._lag_gauges()
        self._placements: set[str] = set()
        self._configured: frozenset[str] = frozenset()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.fallbacks.labels("none")

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, kept: ``labels`` validates and locks on every call,
        a cost per request on the hot path. Only for metrics never cleared (the request,
        latency, offer and fallback series), whose children stay valid."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def set_placements(self, names: Iterable[str]) -> None:
        """The configured placements: from now on the only placement labels besides
        ``none`` and ``other`` (an empty set: the first :data:`MAX_PLACEMENTS` seen)."""
        self._configured = frozenset(names)

    def placement_label(self, placement: str | None) -> str:
        """``placement`` as a bounded label value (``none`` when absent)."""
        if placement is None:
            return "none"
        if self._configured:
            return placement if placement in self._configured else "other"
        if placement in self._placements:
            return placement
        if len(self._placements) >= MAX_PLACEMENTS:
            return "other"
        self._placements.add(placement)
        return placement

    def set_arms(self, arms: Iterable[tuple[str, str]]) -> None:
        """Export a series per (experiment, arm) from the start, at 0 until answers come."""
        self.experiment_answers.clear()
        for experiment, arm in arms:
            self.experiment_answers.labels(experiment, arm)

    def set_versions(self, model_version: str, catalog_version: str, n_offers: int) -> None:
        """Publish the model and offer catalog versions being served."""
        if self._versions is not None:  # 0 first: a shared metrics file keeps what was set
            self.model_info.labels(self._versions[0]).set(0)
            self.catalog_info.labels(self._versions[1]).set(0)
        self.model_info.clear()
        self.model_info.labels(model_version).set(1)
        self.catalog_info.clear()
        self.catalog_info.labels(catalog_version).set(n_offers)
        self._versions = (model_version, catalog_version)

    def observe_offers(
        self,
        offer_ids: Iterable[str],
        *,
        placement: str | None,
        fallback: bool,
        profile_ts: float | None,
        now: float | None = None,
    ) -> None:
        """Record one next-best-offer answer: the offers, a fallback, the profile's age."""
        label = self.placement_label(placement)
        for offer_id in offer_ids:
            self.child(self.offers, offer_id, label).inc()
        if fallback:
            self.child(self.fallbacks, label).inc()
        if profile_ts is not None:
            now = time.time() if now is None else now
            self.profile_age.observe(max(0.0, now - profile_ts))


# --- reading an exposition (the API reads the worker's) -------------------------------------


def parse_exposition(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Samples per metric family name: ``{family: [(sample name, labels, value)]}``."""
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.name, dict(s.labels), float(s.value)) for s in family.samples]
    return out


def histogram_buckets(
    families: Mapping[str, list[tuple[str, dict[str, str], float]]], name: str
) -> list[tuple[float, float]]:
    """Cumulative ``(upper bound, count)`` of histogram ``name``, summed over its labels."""
    sums: dict[float, float] = {}
    for sample, labels, value in families.get(name, []):
        if sample == f"{name}_bucket":
            upper = float(labels["le"])
            sums[upper] = sums.get(upper, 0.0) + value
    return sorted(sums.items())


def counter_value(
    families: Mapping[str, list[tuple[str, dict[str, str], float]]], name: str
) -> float:
    """Sum of counter ``name`` (family name without ``_total``) over its labels."""
    return sum(v for sample, _, v in families.get(name, []) if sample == f"{name}_total")
