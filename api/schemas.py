"""Response bodies of the HTTP API, as pydantic models so the OpenAPI document is exact.

Request bodies of ``POST /v1/events`` are deliberately *not* modelled here: they are parsed by
:func:`recommender.core.events.validate_event`, the one validator the worker and replay use too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from api.examples import EXAMPLES
from recommender.core.catalog import Catalog
from recommender.core.profile import Profile

if TYPE_CHECKING:
    from recommender.core.scoring import Decision, ScoredOffer


def iso(ts: float) -> str:
    """ISO-8601 text (UTC) of epoch seconds."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


class ErrorItem(BaseModel):
    """One reason a request was rejected."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ErrorItem"]]})

    index: int | None = Field(
        None, description="Position of the offending event in a batch (null for a single event)."
    )
    field: str | None = Field(None, description="The offending field, when one can be named.")
    reason: str = Field(description="What is wrong, in words.")


class ValidationErrorResponse(BaseModel):
    """Body of a 422: every problem found, so a client can fix all of them at once."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ValidationErrorResponse"]]})

    detail: list[ErrorItem]


class MessageResponse(BaseModel):
    """Body of other errors (404, 413, 503)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["MessageResponse"]]})

    detail: str


class RetryEventsResponse(BaseModel):
    """Body of a 503 of ``POST /v1/events``: the log did not acknowledge the events in time.

    Some may still have been stored: send the same events again with these ids (``Retry-After``
    seconds later) and each counts once."""

    detail: str
    event_ids: list[str] = Field(description="The id of each event of the request, in order.")


class AcceptedResponse(BaseModel):
    """Events accepted: all of them are acknowledged by Kafka."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["AcceptedResponse"]]})

    accepted: int = Field(description="Number of events produced to the events topic.")
    event_ids: list[str] = Field(
        description="The id of each event, in order: the caller's, or one the API assigned. "
        "An event sent again with its id counts once (within ZMOT_DEDUPE_WINDOW_HOURS)."
    )


_M = TypeVar("_M", bound=BaseModel)
_PLAIN: dict[type[BaseModel], bool] = {}


def _plain(cls: type[BaseModel]) -> bool:
    """The model has no alias, no post-init and no extra fields: ``model_construct`` with a
    value for every field only fills ``__dict__`` and the set of fields."""
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = (
            not cls.__pydantic_post_init__
            and not cls.__pydantic_root_model__
            and cls.model_config.get("extra") != "allow"
            and all(
                f.alias is None and f.validation_alias is None
                for f in cls.__pydantic_fields__.values()
            )
        )
    return plain


def constructed(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` (no validation: every value already has its field's
    type), without its generic loop over the fields when ``values`` names every field of a
    plain model (:func:`_plain`): the same object, built for each offer of every answer."""
    if values.keys() != cls.__pydantic_fields__.keys() or not _plain(cls):
        return cls.model_construct(**values)
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


class OfferOut(BaseModel):
    """One offer with its score and the reasons behind it."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["OfferOut"]]})

    offer_id: str
    item_id: str
    title: str
    category: str | None = Field(None, description="Catalog category of the offered item.")
    score: float
    reasons: list[str] = Field(description="Readable reasons, strongest first.")
    policy: str = Field("greedy", description="Policy that chose the offer: greedy or explore.")
    probability: float = Field(
        1.0, description="Exact probability that the policy chose this offer for its slot."
    )
    debug: dict[str, float | None] | None = Field(
        None,
        description="With debug=true: propensity, value, context_weight, lever, priority "
        "(null where a fallback has none) and the parts of the context weight.",
        # Left out of the answer when absent; a field-level rule (not a model serializer)
        # keeps every field of the offer in the OpenAPI document.
        exclude_if=lambda value: value is None,
    )

    @classmethod
    def from_scored(cls, scored: ScoredOffer, catalog: Catalog) -> OfferOut:
        """The offer as answered; built without validation (a cost per offer per request):
        every value is converted here to the field's type, as validation would."""
        offer = scored.offer
        item = scored.item if scored.item is not None else catalog.get(offer.item_id)
        debug = scored.debug
        return constructed(
            cls,
            {
                "offer_id": str(offer.offer_id),
                "item_id": str(offer.item_id),
                "title": str(offer.title),
                "category": item.category if item is not None else None,
                "score": float(scored.score),
                "reasons": [str(r) for r in scored.reasons],
                "policy": str(scored.policy),
                "probability": float(scored.probability),
                "debug": None
                if debug is None
                else {k: None if v is None else float(v) for k, v in debug.items()},
            },
        )


class NextBestOfferResponse(BaseModel):
    """The offers to show one user now."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["NextBestOfferResponse"]]})

    user_id: str
    offers: list[OfferOut]
    model_version: str
    fallback: bool = Field(
        description="True when the profile said nothing usable and popular offers were returned."
    )
    placement: str | None = Field(None, description="The placement asked for, echoed back.")
    stage: str = Field("stimulus", description="Journey stage: stimulus, zmot, fmot, smot or umot.")
    decision_id: str | None = Field(
        None, description="Id of this decision in the decision log (off-policy evaluation)."
    )
    catalog_version: str | None = Field(None, description="Content hash of the offer catalog.")
    note: str | None = Field(
        None, description="Why the answer is what it is when not obvious (floor, deadline)."
    )
    personalised: bool = Field(
        description="True when the person's stored profile chose the offers; false for a "
        "stranger, a person without consent to profiling, a fallback or a missed deadline."
    )
    experiment: str | None = Field(
        None, description="The experiment the user is in for this placement (null: none)."
    )
    arm: str | None = Field(None, description="The user's arm in that experiment.")

    @classmethod
    def from_decision(
        cls,
        user_id: str,
        decision: Decision,
        catalog: Catalog,
        model_version: str,
        placement: str | None,
        catalog_version: str | None = None,
        *,
        personalised: bool,
        experiment: str | None = None,
        arm: str | None = None,
    ) -> NextBestOfferResponse:
        return constructed(  # values of the fields' types: see OfferOut.from_scored
            cls,
            {
                "user_id": user_id,
                "offers": [OfferOut.from_scored(s, catalog) for s in decision.offers],
                "model_version": model_version,
                "fallback": bool(decision.fallback),
                "placement": placement,
                "stage": decision.stage,
                "decision_id": decision.decision_id or None,
                "catalog_version": catalog_version,
                "note": decision.note,
                "personalised": bool(personalised),
                "experiment": experiment,
                "arm": arm,
            },
        )


class BatchOfferRequest(BaseModel):
    """``POST /v1/next-best-offer:batch``: the same question for many users."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["BatchOfferRequest"]]})

    user_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=1000
    )
    k: int | None = Field(None, ge=1, description="At most ZMOT_MAX_K, as in the GET form.")
    placement: str | None = Field(None, min_length=1, max_length=128)
    channel: Literal["web", "app", "email", "store", "ad"] | None = None
    context_item: str | None = Field(None, min_length=1, max_length=256)
    debug: bool = False
    timeout_ms: int | None = Field(None, ge=1, le=60_000)


class BatchOfferResponse(BaseModel):
    """One answer per user, in the order asked."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["BatchOfferResponse"]]})

    results: list[NextBestOfferResponse]


class ReloadResponse(BaseModel):
    """The offer catalog now active."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ReloadResponse"]]})

    catalog_version: str
    offers: int
    placements: list[str]


class ModelSwapResponse(BaseModel):
    """The model now served after a look at the registry's pointer."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ModelSwapResponse"]]})

    model_version: str
    previous: str | None = Field(
        None, description="The version swapped out (null: the pointer named the served one)."
    )


class ProfileResponse(BaseModel):
    """A user's live interest profile, decayed to the time of the request."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ProfileResponse"]]})

    user_id: str
    features: dict[str, float] = Field(description="Feature -> decayed weight, heaviest first.")
    last_update: str | None = Field(description="Event time of the last applied event (ISO-8601).")
    events_applied: int
    purchases: dict[str, str] = Field(description="Item id -> purchase time (ISO-8601).")

    @classmethod
    def from_profile(
        cls, user_id: str, profile: Profile, now: float, half_life_s: float
    ) -> ProfileResponse:
        weights = profile.decayed(now, half_life_s)
        ordered = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        purchases = sorted(profile.purchases.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(
            user_id=user_id,
            features=dict(ordered),
            last_update=iso(profile.last_ts) if profile.last_ts is not None else None,
            events_applied=profile.n_events,
            purchases={item: iso(ts) for item, ts in purchases},
        )


class HealthResponse(BaseModel):
    """Liveness: the process answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["HealthResponse"]]})

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Readiness: ``ready`` (all checks ok), ``degraded`` (Redis down: answers without
    profiles, flagged fallback) or ``unavailable`` (no model, 503)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ReadyResponse"]]})

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, str] = Field(description="Check name -> 'ok' or what failed.")
    catalog_version: str | None = Field(
        None,
        description="Content hash of the active offer catalog (absent without one).",
        exclude_if=lambda value: value is None,
    )
    model_version: str | None = Field(
        None,
        description="The model version being served (absent before one is loaded).",
        exclude_if=lambda value: value is None,
    )
    model_refused: str | None = Field(
        None,
        description="Why the version the registry's pointer names is not served (absent when "
        "it is): the previous version keeps serving.",
        exclude_if=lambda value: value is None,
    )
    profiles: dict[str, Any] | None = Field(
        None,
        description="Blue/green profiles (absent without a model registry): `live`, the "
        "generation whose profiles are served (name, model version, key prefix, consumer "
        "group); `rebuild`, one being built for an incompatible model, with its lag and the "
        "lag at which it becomes live; `retired`, old prefixes expiring.",
        exclude_if=lambda value: value is None,
    )


class LinkRequest(BaseModel):
    """``POST /v1/users/{id}/links``: the anonymous id the person used before logging in."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["LinkRequest"]]})

    anonymous_id: str = Field(min_length=1, max_length=128)


class LinkResponse(BaseModel):
    """The link now stored."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["LinkResponse"]]})

    user_id: str
    anonymous_id: str
    linked_ids: list[str] = Field(description="Every anonymous id now linked to the user.")


class ConsentRequest(BaseModel):
    """``PUT /v1/users/{id}/consent``: the person's choice about profiling."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ConsentRequest"]]})

    profiling: bool = Field(description="True: events may build a profile; false: they may not.")


class ConsentResponse(BaseModel):
    """The choice now recorded."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ConsentResponse"]]})

    user_id: str
    profiling: bool
    profile_deleted: bool = Field(description="A refusal deleted the profile that existed.")


class ErasureResponse(BaseModel):
    """What ``DELETE /v1/users/{id}`` removed, and the erasure time that now holds."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ErasureResponse"]]})

    user_id: str
    profile: bool = Field(description="A profile existed and was deleted.")
    features: int = Field(description="Interest features deleted.")
    purchases: int = Field(description="Remembered purchases deleted.")
    exposure: int = Field(description="Impression and dismissal counts deleted.")
    consent: bool = Field(description="A recorded consent choice was deleted.")
    linked: int = Field(
        0, description="Anonymous ids linked to the person (identify), erased with them."
    )
    erased_at: str = Field(
        description="Events of this person up to this time (event time) are dropped for ever; "
        "later events build a new profile."
    )


class ConsentState(BaseModel):
    """A person's consent as stored and as applied."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ConsentState"]]})

    profiling: bool | None = Field(description="The recorded choice (null: none recorded).")
    default: Literal["granted", "denied"] = Field(description="ZMOT_DEFAULT_CONSENT.")
    effective: bool = Field(description="Whether events of the person build a profile now.")


class ExportedProfile(ProfileResponse):
    """The profile as stored, with the exposure the frequency caps count."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ExportedProfile"]]})

    impressions: dict[str, dict[str, int]] = Field(
        description="Offer id -> hour (ISO-8601) -> impressions of the offer that hour."
    )
    dismissals: dict[str, dict[str, int]] = Field(
        description="Offer id -> hour (ISO-8601) -> dismissals of the offer that hour."
    )
    expires_after_days: float = Field(
        description="The profile expires this long after its last update (ZMOT_PROFILE_TTL_DAYS)."
    )

    @classmethod
    def of(
        cls, user_id: str, profile: Profile, now: float, half_life_s: float, ttl_days: float
    ) -> ExportedProfile:
        base = ProfileResponse.from_profile(user_id, profile, now, half_life_s)

        def hours(counts: dict[str, dict[int, int]]) -> dict[str, dict[str, int]]:
            return {
                offer: {iso(hour * 3600.0): n for hour, n in sorted(per_hour.items())}
                for offer, per_hour in sorted(counts.items())
            }

        return cls(
            **base.model_dump(),
            impressions=hours(profile.shown),
            dismissals=hours(profile.dismissed),
            expires_after_days=ttl_days,
        )


class ExportResponse(BaseModel):
    """``GET /v1/users/{id}/export``: everything zmot stores about one person (Art. 15/20)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ExportResponse"]]})

    user_id: str
    exported_at: str
    consent: ConsentState
    erased_at: str | None = Field(description="Time of the last erasure (null: never erased).")
    profile: ExportedProfile | None = Field(description="The live profile (null: none stored).")
    linked_ids: list[str] = Field(
        default_factory=list,
        description="Anonymous ids linked to the person (identify): their profiles are served "
        "with this one and erased with it.",
    )
