"""The browser clients, served by the API: ``/sdk/zmot.js`` (tracker and offer widget, built
from ``clients/js/``) and, in demo mode, the example shop page ``/demo/shop`` that uses them.

Both are public pages (no key), like ``/docs``: the script holds no secret, and the shop page
only exists with ``ZMOT_DEMO_SHOP=true``.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from api.deps import ServicesDep, reject
from api.schemas import MessageResponse

router = APIRouter(tags=["browser"])

MESSAGE_REF = "#/components/schemas/MessageResponse"

SDK_FILE = Path(__file__).resolve().parents[2] / "clients" / "js" / "dist" / "zmot.js"
"""The IIFE build of ``clients/js`` (``node clients/js/build.mjs`` writes it; committed)."""


@cache
def _sdk(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@router.get(
    "/sdk/zmot.js",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/javascript": {"example": "/*! zmot 0.1.0 ... */ (function () {...})();"}
            },
            "description": "The tracker and widget",
        },
        404: {"model": MessageResponse, "description": "This installation has no built SDK"},
    },
)
async def sdk(services: ServicesDep) -> Response:
    """The browser tracker and ``<zmot-offers>`` widget as one script (``window.zmot``)."""
    path = services.settings.sdk_path or SDK_FILE
    body = _sdk(path)
    if body is None:
        raise reject(404, f"no browser SDK at {path}; set ZMOT_SDK_PATH or build clients/js")
    return Response(
        body,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get(
    "/demo/shop",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {"example": "<!doctype html>..."}}, "description": "Page"},
        # Spelled out: a "model" here would be documented as text/html (the route's type).
        404: {
            "description": "Not in demo mode",
            "content": {"application/json": {"schema": {"$ref": MESSAGE_REF}}},
        },
    },
)
async def demo_shop(services: ServicesDep) -> HTMLResponse:
    """The example shop page of `zmot demo` (``ZMOT_DEMO_SHOP=true`` only)."""
    if not services.settings.demo_shop:
        raise reject(404, "the example shop is served in demo mode only (ZMOT_DEMO_SHOP=true)")
    return HTMLResponse(SHOP_PAGE)


SHOP_PAGE = (files("api") / "shop.html").read_text(encoding="utf-8")
