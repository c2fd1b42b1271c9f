"""``POST /v1/admin/reload``: read the offer file and placements again, without a restart."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request

from api.auth import Admin
from api.deps import ServicesDep, error_detail, reject
from api.engine import reload_engine
from api.schemas import ReloadResponse, ValidationErrorResponse
from recommender.core.errors import CatalogError, ConfigError

router = APIRouter(tags=["admin"])


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses={422: {"model": ValidationErrorResponse, "description": "Invalid offer file"}},
)
async def reload_offers(request: Request, services: ServicesDep, _: Admin) -> ReloadResponse:
    """Reload offers and placements; a bad file is a 422 and the old catalog stays active."""
    try:
        engine = reload_engine(services.engine, services.settings)
    except (CatalogError, ConfigError) as exc:
        raise reject(422, [error_detail(str(exc))]) from None
    request.app.state.services = dataclasses.replace(services, engine=engine)
    services.ops.engine_loaded(engine)
    return ReloadResponse(
        catalog_version=engine.catalog_version,
        offers=engine.n_offers,
        placements=sorted(engine.arbiter.placements.by_name),
    )
