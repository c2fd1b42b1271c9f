"""``GET /v1/next-best-offer`` and its batch form: what to offer users now."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Header, Query
from redis.exceptions import RedisError

from api.auth import Caller, OffersReader
from api.deps import BatchOfferBody, Services, ServicesDep, error_detail, reject
from api.engine import Engine
from api.schemas import (
    BatchOfferRequest,
    BatchOfferResponse,
    MessageResponse,
    NextBestOfferResponse,
    ValidationErrorResponse,
)
from recommender.core.arbitration import OfferRequest
from recommender.core.attribution import DecisionRecord
from recommender.core.decision_log import DecisionLine
from recommender.core.privacy import without_personal_reasons
from recommender.core.profile import Profile
from recommender.core.reasons import language
from recommender.core.scoring import Decision

router = APIRouter(tags=["offers"])
logger = logging.getLogger("zmot.api")

DEADLINE_NOTE = "profile not read within timeout_ms: best answer without it"
UNAVAILABLE_NOTE = "profile store unavailable: best answer without the profile"
Channel = Literal["web", "app", "email", "store", "ad"]

_T = TypeVar("_T")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _deadline(services: Services, timeout_ms: int | None) -> float:
    """The request's deadline: its ``timeout_ms``, else ``ZMOT_DEFAULT_TIMEOUT_MS``."""
    ms = timeout_ms if timeout_ms is not None else services.settings.default_timeout_ms
    return time.monotonic() + ms / 1000.0


async def _read(
    services: Services, read: Callable[[], Awaitable[_T]], deadline: float
) -> tuple[_T | None, str | None]:
    """``read()`` of Redis within the deadline, through the circuit breaker: (result, None),
    or (None, the note of an answer without it) when Redis failed, was too slow or is known to
    be down. Never raises on Redis: the page gets an answer."""
    breaker = services.breaker
    if not breaker.allow():
        return None, UNAVAILABLE_NOTE
    try:
        async with asyncio.timeout(_remaining(deadline)):  # no task per read, as wait_for
            result = await read()
    except TimeoutError:
        breaker.failure("no answer within the deadline")
        return None, DEADLINE_NOTE
    except (RedisError, OSError) as exc:
        breaker.failure(f"{type(exc).__name__}: {exc}")
        services.ops.metrics.redis_errors.inc()
        return None, UNAVAILABLE_NOTE
    except BaseException:
        breaker.failure("read cancelled")  # never leave a probe pending
        raise
    breaker.success()
    return result, None


async def _ratings_added(
    services: Services, decisions: list[Decision], lang: str, deadline: float | None
) -> list[Decision]:
    """Social proof from the rating aggregates (one read for all, of the items not read within
    the last few seconds: :class:`~recommender.adapters.feedback_store.RatingCache`), if in
    time."""
    arbiter = services.engine.arbiter
    items = sorted({s.offer.item_id for d in decisions for s in d.offers if not d.fallback})
    if not items:
        return decisions
    ratings = services.ratings.cached(items)  # the usual case: no read, no timer
    if ratings is None:
        try:
            async with asyncio.timeout(_remaining(deadline)):
                ratings = await services.ratings.ratings(items)
        except (TimeoutError, RedisError):
            return decisions  # reasons without social proof beat no answer
    return [arbiter.with_ratings(d, ratings, lang) for d in decisions]


async def _consenting(services: Services, user_ids: Sequence[str]) -> list[Profile | None]:
    """The users' profiles, None for those without one or without consent to profiling."""
    default = services.settings.default_consent == "granted"
    # A known user's linked anonymous profiles (identify) are merged in, read in the same trip.
    profiles, states = await services.privacy.served_profiles(user_ids, services.engine.half_life_s)
    return [p if s.consents(default) else None for p, s in zip(profiles, states, strict=True)]


@dataclass(frozen=True)
class OfferQuery:
    """The query of ``GET /v1/next-best-offer``, validated."""

    user_id: str
    k: int | None = None
    placement: str | None = None
    channel: str | None = None
    context_item: str | None = None
    debug: bool = False
    same_category: bool = False
    timeout_ms: int | None = None


@dataclass(frozen=True)
class Served:
    """Who answers one user: the engine of their experiment arm, and the request as logged."""

    engine: Engine
    request: OfferRequest


def _serving(engine: Engine, user_id: str, request: OfferRequest) -> Served:
    """The user's engine and request, with their experiment and arm (if any) on the request."""
    chosen, assignment = engine.for_user(user_id, request.placement)
    if assignment is None:
        return Served(chosen, request)
    named = replace(request, experiment=assignment.experiment.name, arm=assignment.arm.name)
    return Served(chosen, named)


async def _decide(
    services: Services,
    profiles: Sequence[Profile | None] | None,
    served: Sequence[Served],
    deadline: float | None,
    note: str | None = None,
    generic: bool = False,
) -> list[Decision]:
    """Decisions for already-read profiles, one per entry of ``served`` (None: not read, for
    the reason in ``note``).

    ``generic``: reasons name nothing personal (keys with ``reasons: generic``).
    """
    now = time.time()
    if profiles is None:
        return [
            s.engine.arbiter.fallback(None, s.request, now, note=note or DEADLINE_NOTE)
            for s in served
        ]
    # ~0.3 ms of numpy and Python per profile: cheaper inline than a hop to a thread.
    out = [
        s.engine.arbiter.decide(profile, s.request, now)
        for profile, s in zip(profiles, served, strict=True)
    ]
    if generic:
        out = [
            without_personal_reasons(d, s.request.lang) for d, s in zip(out, served, strict=True)
        ]
    return await _ratings_added(services, out, served[0].request.lang, deadline)


def _personalised(profile: Profile | None, decision: Decision) -> bool:
    return profile is not None and not decision.fallback


def _check_k(services: Services, k: int | None) -> None:
    if k is not None and k > services.settings.max_k:
        raise reject(422, [error_detail(f"k must be at most {services.settings.max_k}", "k")])


@router.get(
    "/v1/next-best-offer",
    response_model=NextBestOfferResponse,
    responses={
        422: {"model": ValidationErrorResponse, "description": "Invalid query parameter"},
        503: {"model": MessageResponse, "description": "The API is starting or stopping"},
    },
)
async def next_best_offer(
    services: ServicesDep,
    caller: OffersReader,
    user_id: Annotated[str, Query(min_length=1, max_length=128)],
    k: Annotated[
        int | None, Query(ge=1, description="Offers (default: placement k, else ZMOT_DEFAULT_K)")
    ] = None,
    placement: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    channel: Annotated[Channel | None, Query(description="Channel of the caller")] = None,
    context_item: Annotated[
        str | None, Query(min_length=1, max_length=256, description="Item on the page")
    ] = None,
    debug: Annotated[bool, Query(description="Add the arbitration formula's parts")] = False,
    same_category: Annotated[bool, Query(description="Allow two offers of one category")] = False,
    timeout_ms: Annotated[
        int | None,
        Query(
            ge=1,
            le=60_000,
            description="Answer within this (default ZMOT_DEFAULT_TIMEOUT_MS), fallback if need be",
        ),
    ] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> NextBestOfferResponse:
    """The best offers for the user's live profile now, arbitrated (popular for a stranger)."""
    # Well-formed requests are answered by api.routes.offers_fast (same answer, without
    # FastAPI's per-request parameter machinery); this route answers the others and documents.
    query = OfferQuery(
        user_id, k, placement, channel, context_item, debug, same_category, timeout_ms
    )
    return await answer_offers(services, caller, query, accept_language)


async def answer_offers(
    services: Services,
    caller: Caller,
    query: OfferQuery,
    accept_language: str | None,
) -> NextBestOfferResponse:
    """The answer of ``GET /v1/next-best-offer`` to an admitted caller."""
    user_id, k = query.user_id, query.k
    deadline = _deadline(services, query.timeout_ms)
    _check_k(services, k)
    request = OfferRequest(
        k,
        query.placement,
        query.channel,
        query.context_item,
        language(accept_language),
        query.debug,
        query.same_category,
    )
    served = _serving(services.engine, user_id, request)
    read = partial(_consenting, services, [user_id])
    profiles, note = await _read(services, read, deadline)
    [decision] = await _decide(services, profiles, [served], deadline, note, caller.generic_reasons)
    await _record(services, [user_id], [decision], [served])
    _log_decisions(services, [user_id], [decision], [served])
    answer = _answer(user_id, decision, served, profiles[0] if profiles else None)
    services.ops.observe_answer(answer, profiles[0] if profiles else None)
    return answer


@router.post(
    "/v1/next-best-offer:batch",
    response_model=BatchOfferResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BatchOfferRequest.model_json_schema()}},
        }
    },
    responses={
        422: {"model": ValidationErrorResponse, "description": "Invalid body"},
        503: {"model": MessageResponse, "description": "The API is starting or stopping"},
    },
)
async def next_best_offer_batch(
    services: ServicesDep,
    caller: OffersReader,
    body: BatchOfferBody,
    accept_language: Annotated[str | None, Header()] = None,
) -> BatchOfferResponse:
    """Offers for many users, their profiles read in one Redis round trip."""
    deadline = _deadline(services, body.timeout_ms)
    _check_k(services, body.k)
    request = OfferRequest(
        body.k,
        body.placement,
        body.channel,
        body.context_item,
        language(accept_language),
        body.debug,
    )
    served = [_serving(services.engine, user_id, request) for user_id in body.user_ids]
    generic = caller.generic_reasons
    read = partial(_consenting, services, body.user_ids)
    got, note = await _read(services, read, deadline)
    profiles: list[Profile | None] = got if got is not None else [None] * len(body.user_ids)
    if note is None:
        decisions = await _decide(services, profiles, served, deadline, None, generic)
    else:
        decisions = await _decide(services, None, served, deadline, note)
    await _record(services, body.user_ids, decisions, served)
    _log_decisions(services, body.user_ids, decisions, served)
    return BatchOfferResponse(
        results=[
            _answer(user_id, decision, s, profile)
            for user_id, decision, s, profile in zip(
                body.user_ids, decisions, served, profiles, strict=True
            )
        ]
    )


async def _record(
    services: Services,
    user_ids: Sequence[str],
    decisions: Sequence[Decision],
    served: Sequence[Served],
) -> None:
    """Keep the decisions made inside an experiment for the worker's attribution, before the
    answer leaves (so they exist when its impressions arrive). A Redis error loses them for
    attribution, never the answer."""
    if services.decisions is None:
        return
    now = time.time()
    records = [
        DecisionRecord(
            d.decision_id,
            user_id,
            now,
            s.request.experiment,
            s.request.arm,
            {o.offer.offer_id: (o.offer.item_id, o.offer.value) for o in d.offers},
        )
        for user_id, d, s in zip(user_ids, decisions, served, strict=True)
        if s.request.experiment is not None and s.request.arm is not None and d.decision_id
    ]
    if not records:
        return
    counter = services.ops.metrics.experiment_answers
    for record in records:
        counter.labels(record.experiment, record.arm).inc()
    try:
        await services.decisions.put_many(records)
    except RedisError as exc:
        services.ops.metrics.redis_errors.inc()
        logger.warning("%d decisions not kept for attribution: %r", len(records), exc)


def _log_decisions(
    services: Services,
    user_ids: Sequence[str],
    decisions: Sequence[Decision],
    served: Sequence[Served],
) -> None:
    """Queue the decisions for the decision log topic (never waits; `zmot ope --from-kafka`
    reads them)."""
    if services.decision_log is None:
        return
    now = time.time()
    services.decision_log.write(
        [
            DecisionLine(
                d.decision_id,
                user_id,
                now,
                [(o.offer.offer_id, o.offer.item_id, o.policy, o.probability) for o in d.offers],
                s.request.placement,
                d.stage,
                d.fallback,
                s.request.experiment,
                s.request.arm,
                s.engine.model_version,
            )
            for user_id, d, s in zip(user_ids, decisions, served, strict=True)
            if d.decision_id
        ]
    )


def _answer(
    user_id: str, decision: Decision, served: Served, profile: Profile | None
) -> NextBestOfferResponse:
    engine = served.engine
    return NextBestOfferResponse.from_decision(
        user_id,
        decision,
        engine.catalog,
        engine.model_version,
        served.request.placement,
        engine.catalog_version,
        personalised=_personalised(profile, decision),
        experiment=served.request.experiment,
        arm=served.request.arm,
    )
