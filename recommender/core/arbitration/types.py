"""The vocabulary of arbitration: its knobs, one request, and what it reads of a user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from recommender.core.offers import OfferSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

DAY = 86400.0

DEFAULT_PURCHASE_EXCLUSION_DAYS = 30.0
"""How long a bought item is not offered again, unless the model's data says otherwise
(:func:`recommender.core.runtime.purchase_exclusion_days`)."""


@runtime_checkable
class Exposure(Protocol):
    """Per-user feedback counts (the profile's, once the feedback loop keeps them)."""

    def impressions(self, offer_id: str, now: float, window_s: float) -> int: ...

    def dismissals(self, offer_id: str, now: float, window_s: float) -> int: ...


class RatingLike(Protocol):
    """A rating aggregate (:class:`recommender.core.feedback.ItemRating`)."""

    @property
    def count(self) -> int: ...

    @property
    def mean(self) -> float: ...


@dataclass(frozen=True)
class ArbitrationConfig:
    """Knobs of arbitration (from :class:`~recommender.core.settings.Settings`)."""

    purchase_exclusion_s: float = DEFAULT_PURCHASE_EXCLUSION_DAYS * DAY
    substitute_window_s: float = 14 * DAY
    smot_window_s: float = 14 * DAY
    half_life_s: float = 72 * 3600.0
    relevance_floor: float = 0.02
    floor_fallback: bool = False
    cap_window_s: float = 24 * 3600.0
    dismiss_window_s: float = 168 * 3600.0
    dismiss_limit: int = 3
    complement_boost: float = 1.0
    stage_boost: float = 1.5
    recent_boost: float = 0.0
    default_k: int = 3
    min_ratings: int = 3
    hybrid: bool = True
    """Serve the hybrid ranker when the model carries its tables (``ZMOT_HYBRID=auto``)."""


@dataclass(frozen=True)
class OfferRequest:
    """What the caller asked for, beyond the user."""

    k: int | None = None
    placement: str | None = None
    channel: str | None = None
    context_item: str | None = None
    lang: str = "en"
    debug: bool = False
    same_category: bool = False
    experiment: str | None = None
    """The experiment and arm the user is in (:mod:`recommender.core.experiments`), logged
    with the decision."""
    arm: str | None = None


@dataclass
class Candidate:
    """An applicable offer resolved to an item, with its priority parts."""

    spec: OfferSpec
    item: int
    item_id: str
    category: str | None
    propensity: float | None
    context_weight: float
    priority: float | None
    score: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
