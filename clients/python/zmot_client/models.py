"""Typed answers of the zmot API.

Each model mirrors one schema of the API's ``/openapi.json`` (named in its docstring); a test
of the zmot repository compares fields, types and required-ness with the served document, so
the two cannot drift apart. Unknown fields are kept (``extra="allow"``): a newer server adding
a field does not break an older client.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Offer(_Answer):
    """One offer with its score and reasons (API schema ``OfferOut``)."""

    offer_id: str
    item_id: str
    title: str
    category: str | None = None
    score: float
    reasons: list[str] = Field(description="Readable reasons, strongest first.")
    policy: str = "greedy"
    probability: float = 1.0
    debug: dict[str, float | None] | None = None


class OfferAnswer(_Answer):
    """The offers to show one user now (API schema ``NextBestOfferResponse``)."""

    user_id: str
    offers: list[Offer]
    model_version: str
    fallback: bool
    placement: str | None = None
    stage: str = "stimulus"
    decision_id: str | None = None
    catalog_version: str | None = None
    note: str | None = None
    personalised: bool
    experiment: str | None = None
    """The experiment the user is in (null outside one)."""
    arm: str | None = None
    """The user's arm of that experiment."""


class BatchAnswer(_Answer):
    """One answer per user, in the order asked (API schema ``BatchOfferResponse``)."""

    results: list[OfferAnswer]


class Accepted(_Answer):
    """Events accepted by ``POST /v1/events`` (API schema ``AcceptedResponse``): the count and
    each event's id, in order."""

    accepted: int
    event_ids: list[str]


class Profile(_Answer):
    """A live profile decayed to now (API schema ``ProfileResponse``)."""

    user_id: str
    features: dict[str, float]
    last_update: str | None
    events_applied: int
    purchases: dict[str, str]


class ExportedProfile(Profile):
    """The profile as stored, with exposure (API schema ``ExportedProfile``)."""

    impressions: dict[str, dict[str, int]]
    dismissals: dict[str, dict[str, int]]
    expires_after_days: float


class ConsentState(_Answer):
    """Consent as recorded and as applied (API schema ``ConsentState``)."""

    profiling: bool | None
    default: Literal["granted", "denied"]
    effective: bool


class Export(_Answer):
    """Everything stored about one person (API schema ``ExportResponse``)."""

    user_id: str
    exported_at: str
    consent: ConsentState
    erased_at: str | None
    profile: ExportedProfile | None
    linked_ids: list[str] = Field(default_factory=list)


class Erasure(_Answer):
    """What an erasure removed (API schema ``ErasureResponse``)."""

    user_id: str
    profile: bool
    features: int
    purchases: int
    exposure: int
    consent: bool
    linked: int = 0
    erased_at: str


class Consent(_Answer):
    """The consent choice now recorded (API schema ``ConsentResponse``)."""

    user_id: str
    profiling: bool
    profile_deleted: bool


class Link(_Answer):
    """An anonymous id linked to a known user (API schema ``LinkResponse``)."""

    user_id: str
    anonymous_id: str
    linked_ids: list[str]


API_SCHEMAS: dict[type[BaseModel], str] = {
    Offer: "OfferOut",
    OfferAnswer: "NextBestOfferResponse",
    BatchAnswer: "BatchOfferResponse",
    Accepted: "AcceptedResponse",
    Profile: "ProfileResponse",
    ExportedProfile: "ExportedProfile",
    ConsentState: "ConsentState",
    Export: "ExportResponse",
    Erasure: "ErasureResponse",
    Consent: "ConsentResponse",
    Link: "LinkResponse",
}
"""Each model and the name of its schema in the API's ``/openapi.json``."""
