"""``POST /v1/events``: the HTTP door to the event topic."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import EventsWriter
from api.deps import MAX_BATCH, EventsBody, ProducerDep, reject
from api.examples import EVENTS
from api.schemas import AcceptedResponse, MessageResponse, ValidationErrorResponse
from recommender.core.events import Event

router = APIRouter(tags=["events"])

_EVENT_SCHEMA = Event.model_json_schema(mode="validation")
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One event, or an array of 1 to "
        f"{MAX_BATCH} events (validated whole: one bad event rejects the batch). "
        "`ts` is ISO-8601 text or epoch milliseconds.",
        "content": {
            "application/json": {
                "example": EVENTS,
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {
                            "type": "array",
                            "items": _EVENT_SCHEMA,
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                        },
                    ]
                },
            }
        },
    }
}


@router.post(
    "/v1/events",
    status_code=202,
    response_model=AcceptedResponse,
    responses={
        403: {"model": MessageResponse, "description": "Key without the scope or event type"},
        413: {"model": MessageResponse, "description": "Batch or body too large"},
        415: {"model": MessageResponse, "description": "Content-Type is not application/json"},
        422: {
            "model": ValidationErrorResponse,
            "description": "Invalid events, by index and field",
        },
        503: {"model": MessageResponse, "description": "Kafka unavailable"},
    },
    openapi_extra=_BODY,
)
async def post_events(
    caller: EventsWriter, events: EventsBody, producer: ProducerDep
) -> AcceptedResponse:
    """Validate one event or a batch and produce it to Kafka, acknowledged before the reply."""
    refused = sorted({e.type for e in events if not caller.may_send(e.type)})
    if refused:
        raise reject(403, f"this key may not send {', '.join(refused)} events")
    await producer.send_many(events)
    return AcceptedResponse(accepted=len(events))
