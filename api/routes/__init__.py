"""HTTP routes, one module per resource; :data:`api_router` mounts them all."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import admin, events, health, offers, ops, privacy, profiles, sdk

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(events.router)
api_router.include_router(offers.router)
api_router.include_router(profiles.router)
api_router.include_router(privacy.router)
api_router.include_router(ops.router)
api_router.include_router(admin.router)
api_router.include_router(sdk.router)

__all__ = ["api_router"]
