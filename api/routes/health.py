"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response

from api.deps import Services
from api.schemas import HealthResponse, ReadyResponse
from recommender.core.errors import ZmotError

router = APIRouter(tags=["health"])

PING_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is alive (no dependency is checked)."""
    return HealthResponse()


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No model: the API cannot serve"}},
)
async def readyz(request: Request, response: Response) -> ReadyResponse:
    """Model loaded and Redis answering PING: ready. Redis down: still 200, ``degraded``
    (answers are popular offers flagged fallback). No model: 503. Checks name what failed."""
    services: Services | None = getattr(request.app.state, "services", None)
    checks: dict[str, str] = {}
    if services is None:
        checks["model"] = "failed: not loaded"
        checks["redis"] = "failed: not connected"
    else:
        checks["model"] = "ok" if services.engine.model_version else "failed: no version"
        try:
            await asyncio.wait_for(services.store.check(), PING_TIMEOUT_S)
            checks["redis"] = "ok"
        except TimeoutError:
            checks["redis"] = f"failed: no PING reply within {PING_TIMEOUT_S:g} s"
        except ZmotError as exc:
            checks["redis"] = f"failed: {exc}"
        if services.breaker.state != "closed":
            checks["redis_breaker"] = (
                f"{services.breaker.state}: {services.breaker.last_error or 'recent failures'}"
            )
    status: Literal["ready", "degraded", "unavailable"] = "ready"
    if checks["model"] != "ok":
        status = "unavailable"
        response.status_code = 503
    elif checks["redis"] != "ok":
        status = "degraded"
    version = services.engine.catalog_version if services is not None else None
    switch = getattr(request.app.state, "model_switch", None)
    return ReadyResponse(
        status=status,
        checks=checks,
        catalog_version=version,
        model_version=services.engine.model_version if services is not None else None,
        model_refused=switch.refused if switch is not None else None,
        profiles=None
        if switch is None or switch.profiles is None or services is None
        else switch.profiles.summary(services.settings.rebuild_max_lag),
    )
