"""The worker's own observability: ``/metrics`` on its web server and lag read from Kafka.

The lag gauges are refreshed from the broker (end offsets, the group's committed offsets and
the oldest unprocessed record), not from what the agent thinks it has done, so they stay
truthful when the agent is stuck; when the whole worker is dead, the API's copy of the same
gauges (read on demand) takes over.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.web import Response

from recommender.adapters.kafka import kafka_auth, read_lag
from recommender.adapters.metrics import WorkerMetrics
from recommender.core.settings import Settings

log = logging.getLogger(__name__)


def register_monitoring(app: Any, settings: Settings, metrics: WorkerMetrics) -> None:
    """Serve ``metrics`` on ``/metrics`` of the faust web server and refresh the lag gauges
    every ``settings.lag_refresh_s`` seconds."""

    async def metrics_page(self: Any, request: Any) -> Response:
        body, content_type = metrics.render()
        return Response(body=body, headers={"Content-Type": content_type})

    app.page("/metrics")(metrics_page)

    async def refresh_lag() -> None:
        await update_lag(metrics, settings)

    app.timer(settings.lag_refresh_s, name="zmot.lag")(refresh_lag)


async def update_lag(metrics: WorkerMetrics, settings: Settings) -> None:
    """Read the group's lag from Kafka into the gauges; a failed read is counted and logged."""
    try:
        document = await read_lag(
            settings.kafka_bootstrap,
            settings.consumer_group,
            settings.events_topic,
            auth=kafka_auth(settings),
        )
    except Exception as exc:  # noqa: BLE001 - a failed lag read must never stop the worker
        metrics.lag_read_errors.inc()
        log.warning("cannot read the consumer lag from Kafka: %s: %s", type(exc).__name__, exc)
        return
    metrics.set_lag(document)
