"""Operations: ``/metrics`` for Prometheus, ``/ops/lag``, ``/ops/summary`` and the ``/ops`` page."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from redis.exceptions import RedisError

from api.auth import OpsReader
from api.deps import Services
from api.examples import OPS_LAG, OPS_SUMMARY
from api.monitoring import Ops
from api.schemas import MessageResponse
from recommender.core.attribution import experiment_report
from recommender.core.errors import ZmotError
from recommender.core.feedback import OfferStats

router = APIRouter(tags=["ops"])

PING_TIMEOUT_S = 1.0


async def get_ops(request: Request) -> Ops:
    ops: Ops = request.app.state.ops
    return ops


OpsDep = Annotated[Ops, Depends(get_ops)]


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "example": "# TYPE zmot_fallbacks_total counter\n"
                    'zmot_fallbacks_total{placement="home"} 3.0\n'
                }
            },
            "description": "Prometheus text format",
        }
    },
)
async def metrics(request: Request, ops: OpsDep, _: OpsReader) -> Response:
    """Prometheus metrics of this API process (lag gauges refreshed from Kafka, per-arm
    attribution counters from Redis, when stale)."""
    try:
        await ops.lag()
    except Exception:  # noqa: BLE001, S110 - counted in zmot_lag_read_errors_total; serve the rest
        pass
    services = getattr(request.app.state, "services", None)
    if services is not None:
        try:
            await asyncio.wait_for(
                ops.refresh_arms(services.feedback, services.engine.experiments), PING_TIMEOUT_S
            )
        except (TimeoutError, RedisError, OSError):  # the last figures read are served
            ops.metrics.redis_errors.inc()
    body, content_type = ops.metrics.render()
    return Response(body, media_type=content_type)


@router.get(
    "/ops/lag",
    responses={
        200: {"content": {"application/json": {"example": OPS_LAG}}, "description": "The lag"},
        503: {"model": MessageResponse, "description": "Kafka could not be read"},
    },
)
async def lag(ops: OpsDep, _: OpsReader) -> JSONResponse:
    """Consumer lag of the worker's group per partition, from Kafka (as `zmot lag --json`)."""
    try:
        return JSONResponse(await ops.lag())
    except Exception as exc:  # noqa: BLE001 - any Kafka failure is a 503 naming it
        detail = f"cannot read the lag from Kafka ({type(exc).__name__}: {exc})"
        return JSONResponse({"detail": detail}, status_code=503)


@router.get(
    "/ops/summary",
    responses={
        200: {"content": {"application/json": {"example": OPS_SUMMARY}}, "description": "Summary"}
    },
)
async def summary(request: Request, ops: OpsDep, _: OpsReader) -> dict[str, Any]:
    """Rates, quantiles, versions and health checks behind the ops page."""
    services = getattr(request.app.state, "services", None)
    redis_ok = False
    model_version = None
    offers = None
    experiments = None
    if services is not None:
        model_version = services.engine.model_version
        try:
            await asyncio.wait_for(services.store.check(), PING_TIMEOUT_S)
            redis_ok = True
        except (TimeoutError, ZmotError):
            redis_ok = False
        offers = await _offer_stats(services) if redis_ok else None
        experiments = await _experiments(services) if redis_ok else None
    document = await ops.summary(model_version, redis_ok, offers)
    document["experiments"] = experiments
    switch = getattr(request.app.state, "model_switch", None)
    document["profiles"] = None
    if switch is not None and switch.profiles is not None and services is not None:
        document["profiles"] = switch.profiles.summary(services.settings.rebuild_max_lag)
    return document


async def _experiments(services: Services) -> list[dict[str, Any]] | None:
    """Each running experiment's per-arm figures and verdicts (None: Redis did not answer)."""
    out = []
    try:
        for experiment in services.engine.experiments.items:
            arms = [a.name for a in experiment.arms]
            figures = await asyncio.wait_for(
                services.feedback.arm_figures(experiment.name, arms), PING_TIMEOUT_S
            )
            out.append(experiment_report(experiment.name, figures))
    except (TimeoutError, RedisError, OSError):
        return None
    return out


async def _offer_stats(services: Services) -> dict[str, OfferStats] | None:
    """Impressions, clicks and dismissals of the active offers (None: Redis did not answer)."""
    ids = [offer.offer_id for offer in services.engine.arbiter.offers.offers]
    try:
        return await asyncio.wait_for(services.feedback.offer_stats(ids), PING_TIMEOUT_S)
    except (TimeoutError, RedisError, OSError):
        return None


@router.get(
    "/ops",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {"example": "<!doctype html>..."}}, "description": "Page"}
    },
)
async def ops_page(_: OpsReader) -> HTMLResponse:
    """The ops page: one self-contained HTML file that polls the two JSON routes above."""
    return HTMLResponse(OPS_PAGE)


OPS_PAGE = (files("api") / "ops.html").read_text(encoding="utf-8")
