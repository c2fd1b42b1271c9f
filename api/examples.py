"""Examples of the OpenAPI document: one per request and response body, shown in ``/docs``.

They are checked against the models they illustrate (``tests/api/test_openapi_docs.py``), so
an example cannot describe a field that does not exist.
"""

from __future__ import annotations

from typing import Any

OFFER: dict[str, Any] = {
    "offer_id": "OFF-TV-55",
    "item_id": "SKU-10423",
    "title": '-15% on Vistara 55" 4K TV',
    "category": "electronics.tv",
    "score": 0.41,
    "reasons": ["you searched 'fernseher'", "rated 4.6 by 120 buyers"],
    "policy": "greedy",
    "probability": 1.0,
}

ANSWER: dict[str, Any] = {
    "user_id": "u-17",
    "offers": [OFFER],
    "model_version": "2026-11-30T10:00:00Z-3f2a",
    "fallback": False,
    "placement": "home",
    "stage": "zmot",
    "decision_id": "5bb77ca617c4453ad33c9e6e22492de0",
    "catalog_version": "3765ba93a61d",
    "note": None,
    "personalised": True,
}

PROFILE: dict[str, Any] = {
    "user_id": "u-17",
    "features": {"q:fernseher": 1.43, "cat:electronics.tv": 0.52, "kind:search": 0.1},
    "last_update": "2026-11-30T10:15:00+00:00",
    "events_applied": 3,
    "purchases": {},
}

EXPORTED_PROFILE: dict[str, Any] = {
    **PROFILE,
    "impressions": {"OFF-TV-55": {"2026-11-30T10:00:00+00:00": 2}},
    "dismissals": {},
    "expires_after_days": 60.0,
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "ErrorItem": {"index": 2, "field": "item_id", "reason": "required for page_view"},
    "ValidationErrorResponse": {
        "detail": [{"index": 2, "field": "item_id", "reason": "required for page_view"}]
    },
    "MessageResponse": {"detail": "key 'web' lacks the scope 'profiles:read'"},
    "AcceptedResponse": {
        "accepted": 2,
        "event_ids": ["0f3c9a7e5b2d4c1a8e6f7d9b0a1c2e3f", "5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"],
    },
    "OfferOut": OFFER,
    "NextBestOfferResponse": ANSWER,
    "BatchOfferRequest": {"user_ids": ["u-17", "u-18"], "k": 3, "placement": "home"},
    "BatchOfferResponse": {"results": [ANSWER]},
    "ReloadResponse": {"catalog_version": "3765ba93a61d", "offers": 120, "placements": ["home"]},
    "ModelSwapResponse": {
        "model_version": "20261201T030000-ab12cd34",
        "previous": "20261130T030000-9f8e7d6c",
    },
    "ProfileResponse": PROFILE,
    "HealthResponse": {"status": "ok"},
    "ReadyResponse": {
        "status": "ready",
        "checks": {"model": "ok", "redis": "ok"},
        "catalog_version": "3765ba93a61d",
    },
    "LinkRequest": {"anonymous_id": "anon-0b7c5d1e-4f7a-4c1e-9d2a-6a3c1f0e8b21"},
    "LinkResponse": {
        "user_id": "customer-4711",
        "anonymous_id": "anon-0b7c5d1e-4f7a-4c1e-9d2a-6a3c1f0e8b21",
        "linked_ids": ["anon-0b7c5d1e-4f7a-4c1e-9d2a-6a3c1f0e8b21"],
    },
    "ConsentRequest": {"profiling": False},
    "ConsentResponse": {"user_id": "u-17", "profiling": False, "profile_deleted": True},
    "ErasureResponse": {
        "user_id": "u-17",
        "profile": True,
        "features": 12,
        "purchases": 1,
        "exposure": 3,
        "consent": True,
        "linked": 1,
        "erased_at": "2026-11-30T11:00:00+00:00",
    },
    "ConsentState": {"profiling": None, "default": "granted", "effective": True},
    "ExportedProfile": EXPORTED_PROFILE,
    "ExportResponse": {
        "user_id": "u-17",
        "exported_at": "2026-11-30T11:00:00+00:00",
        "consent": {"profiling": None, "default": "granted", "effective": True},
        "erased_at": None,
        "profile": EXPORTED_PROFILE,
        "linked_ids": [],
    },
}
"""Schema name -> one example of it."""

EVENTS: list[dict[str, Any]] = [
    {"user_id": "u-17", "type": "search", "query": "Fernseher Reparatur", "ts": 1795428900000},
    {"user_id": "u-17", "type": "page_view", "item_id": "SKU-10423", "channel": "web"},
]
"""An example body of ``POST /v1/events``."""

OPS_SUMMARY: dict[str, Any] = {
    "model_version": "2026-11-30T10:00:00Z-3f2a",
    "lag": {"total_lag": 0, "max_lag_seconds": 0.0},
    "events_per_second": 41.5,
    "offers": {"OFF-TV-55": {"impressions": 40, "clicks": 3, "dismissals": 1, "click_rate": 0.075}},
    "health": {"ok": True, "checks": {"redis": True, "model": True, "kafka": True}},
}
"""An abridged ``/ops/summary`` (the full document: README, Operating zmot)."""

OPS_LAG: dict[str, Any] = {
    "group": "zmot-worker",
    "topic": "zmot.events",
    "total_lag": 0,
    "max_lag_seconds": 0.0,
    "partitions": [
        {"partition": 0, "end_offset": 512, "committed_offset": 512, "lag": 0, "lag_seconds": 0.0}
    ],
}
