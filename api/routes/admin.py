"""``POST /v1/admin/reload``: read the offer file and placements again, without a restart."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request

from api.deps import ServicesDep, error_detail, reject
from api.schemas import ReloadResponse, ValidationErrorResponse
from recommender.core.errors import CatalogError, ConfigError

router = APIRouter(tags=["admin"])


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses={422: {"model": ValidationErrorResponse, "description": "Invalid offer file"}},
)
async def reload_offers(request: Request, services: ServicesDep) -> ReloadResponse:
    """Reload offers and placements; a bad file is a 422 and the old catalog stays active."""
    from api.app import reload_engine  # the app module imports the routes

    try:
        engine = reload_engine(services.engine, services.settings)
    except (CatalogError, ConfigError) as exc:
        raise reject(422, [error_detail(str(exc))]) from None
    request.app.state.services = dataclasses.replace(services, engine=engine)
    arbiter = engine.arbiter
    assert arbiter is not None
    if services.ops is not None:
        services.ops.metrics.set_versions(
            engine.model_version, arbiter.version, len(arbiter.offers)
        )
    return ReloadResponse(
        catalog_version=arbiter.version,
        offers=len(arbiter.offers),
        placements=sorted(arbiter.placements.by_name),
    )
