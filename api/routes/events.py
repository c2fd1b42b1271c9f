"""``POST /v1/events``: the HTTP door to the event topic."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter

from api.auth import EventsWriter
from api.deps import MAX_BATCH, EventLogUnavailable, EventsBody, ServicesDep, reject
from api.examples import EVENTS
from api.schemas import (
    AcceptedResponse,
    MessageResponse,
    RetryEventsResponse,
    ValidationErrorResponse,
)
from recommender.core.events import Event, event_json_schema

router = APIRouter(tags=["events"])

_EVENT_SCHEMA = event_json_schema()
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
        503: {
            "model": RetryEventsResponse,
            "description": "Kafka did not acknowledge in time: retry with the ids, after "
            "Retry-After seconds",
        },
    },
    openapi_extra=_BODY,
)
async def post_events(
    caller: EventsWriter, events: EventsBody, services: ServicesDep
) -> AcceptedResponse:
    """Validate one event or a batch and produce it to Kafka, acknowledged before the reply."""
    refused = sorted({e.type for e in events if not caller.may_send(e.type)})
    if refused:
        raise reject(403, f"this key may not send {', '.join(refused)} events")
    events = [with_id(e) for e in events]
    ids = [e.event_id or "" for e in events]
    try:
        await asyncio.wait_for(
            services.producer.send_many(events), services.settings.produce_timeout_s
        )
    except (KafkaError, TimeoutError) as exc:
        raise EventLogUnavailable(ids, exc) from exc
    return AcceptedResponse(accepted=len(events), event_ids=ids)


def with_id(event: Event) -> Event:
    """The event, with a new id (random, 32 hex digits) when it was sent without one."""
    return event if event.event_id else event.model_copy(update={"event_id": uuid.uuid4().hex})
