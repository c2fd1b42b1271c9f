"""What routes depend on: the services built at start-up and the request pieces parsed once.

Routes take these through the ``Annotated`` aliases (``ServicesDep``, ``ProducerDep``,
``EventsBody``) and stay a few lines each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request
from pydantic import ValidationError

from api.breaker import CircuitBreaker
from api.engine import Engine
from api.monitoring import Ops
from api.schemas import BatchOfferRequest
from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore, RatingCache
from recommender.adapters.kafka import DecisionLog
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore
from recommender.core.errors import InvalidEventError
from recommender.core.events import Event, validate_event
from recommender.core.generations import Generation
from recommender.core.settings import Settings

MAX_BATCH = 10_000
"""Most events one ``POST /v1/events`` may carry; more is a 413."""

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body read; a valid event is well under 1.6 kB, so a full batch fits."""


class EventSink(Protocol):
    """Where accepted events go; :class:`recommender.adapters.kafka.EventProducer` in production."""

    async def send_many(self, events: Sequence[Event]) -> None: ...


@dataclass(frozen=True)
class Services:
    """Everything the lifespan opened, held on ``app.state.services``."""

    settings: Settings
    engine: Engine
    store: ProfileStore
    producer: EventSink
    ops: Ops  # metrics and lag of this app
    feedback: FeedbackStore  # rating aggregates for social proof
    ratings: RatingCache  # the same ratings, cached briefly
    privacy: PrivacyStore  # consent and erasure records
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)  # in front of profile reads
    decisions: DecisionStore | None = None  # decisions inside experiments, for attribution
    generation: Generation | None = None  # whose profiles ``store`` reads (None: original)
    decision_log: DecisionLog | None = None  # every decision to ZMOT_DECISIONS_TOPIC


class EventLogUnavailable(Exception):
    """Kafka did not acknowledge the events of a request in time (a 503 with Retry-After).

    ``event_ids`` are the request's ids in order, so the caller can send the same events again
    and have each count once."""

    def __init__(self, event_ids: list[str], cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.event_ids = event_ids
        self.cause = cause


def error_detail(reason: str, field: str | None = None, index: int | None = None) -> dict[str, Any]:
    """One item of a 422 body (the shape of :class:`api.schemas.ErrorItem`)."""
    return {"index": index, "field": field, "reason": reason}


def reject(status_code: int, detail: str | list[dict[str, Any]]) -> HTTPException:
    """An HTTPException whose body is ``{"detail": detail}``."""
    return HTTPException(status_code=status_code, detail=detail)


# --- services ---------------------------------------------------------------------------------
# Dependencies are ``async def`` although they never wait: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per dependency per request.


def services_of(state: Any) -> Services:
    """The services on an app's ``state`` (set by the lifespan), else a 503."""
    services: Services | None = getattr(state, "services", None)
    if services is None:
        raise reject(503, "the API is starting or stopping; try again")
    return services


async def get_services(request: Request) -> Services:
    """The services of the running app (set by the lifespan)."""
    return services_of(request.app.state)


ServicesDep = Annotated[Services, Depends(get_services)]


async def services_producer(services: ServicesDep) -> EventSink:
    return services.producer


ProducerDep = Annotated[EventSink, Depends(services_producer)]


# --- request pieces ---------------------------------------------------------------------------


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) to read more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise reject(413, f"body larger than {limit} bytes; send at most {MAX_BATCH} events")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise reject(413, f"body larger than {limit} bytes; send at most {MAX_BATCH} events")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_events(body: bytes, max_batch: int = MAX_BATCH) -> list[Event]:
    """Events of a body holding one event object or an array of them.

    Every event is validated before anything is returned, so a batch is rejected whole (422
    listing each invalid event by index and field) or accepted whole.
    """
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise reject(422, [error_detail("body is not UTF-8")]) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise reject(422, [error_detail(f"body is not JSON: {exc}")]) from None
    if isinstance(data, dict):
        try:
            return [validate_event(data)]
        except InvalidEventError as exc:
            raise reject(422, [error_detail(exc.reason, exc.field)]) from None
    if not isinstance(data, list):
        reason = f"body must be an event object or an array of events, got {type(data).__name__}"
        raise reject(422, [error_detail(reason)])
    if not data:
        raise reject(422, [error_detail("empty batch: send at least one event")])
    if len(data) > max_batch:
        raise reject(413, f"batch of {len(data)} events; send at most {max_batch} per request")
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, obj in enumerate(data):
        try:
            events.append(validate_event(obj))
        except InvalidEventError as exc:
            errors.append(error_detail(exc.reason, exc.field, index))
    if errors:
        raise reject(422, errors)
    return events


def require_json(request: Request) -> None:
    """415 unless the body is declared ``application/json``.

    A browser sends ``text/plain`` cross-site without asking first (no CORS preflight); JSON
    only is what keeps other sites' pages from posting events with a visitor's cookies or key.
    """
    declared = request.headers.get("content-type", "")
    if declared.partition(";")[0].strip().lower() != "application/json":
        raise reject(415, "send the body as Content-Type: application/json")


async def events_body(request: Request) -> list[Event]:
    """The validated events of a ``POST /v1/events`` body."""
    require_json(request)
    return parse_events(await read_body(request))


EventsBody = Annotated[list[Event], Depends(events_body)]


async def batch_offer_body(request: Request) -> BatchOfferRequest:
    """The body of ``POST /v1/next-best-offer:batch``, read within the same byte limit."""
    require_json(request)
    body = await read_body(request)
    try:
        return BatchOfferRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            error_detail(str(err["msg"]), ".".join(str(p) for p in err["loc"]) or None)
            for err in exc.errors()
        ]
        raise reject(422, errors) from None


BatchOfferBody = Annotated[BatchOfferRequest, Depends(batch_offer_body)]
