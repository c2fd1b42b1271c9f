"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

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
    responses={503: {"model": ReadyResponse, "description": "A check failed"}},
)
async def readyz(request: Request, response: Response) -> ReadyResponse:
    """Redis answers PING and the model is loaded; 503 names the failed check."""
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
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        response.status_code = 503
    version = services.engine.catalog_version if services is not None else None
    switch = getattr(request.app.state, "model_switch", None)
    return ReadyResponse(
        status="ready" if ready else "unavailable",
        checks=checks,
        catalog_version=version,
        model_version=services.engine.model_version if services is not None else None,
        model_refused=switch.refused if switch is not None else None,
    )
