"""From a live profile to ranked offers with reasons: what the API serves on every page view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.core.catalog import Catalog, Item, Offer
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.reasons import MAX_REASONS, reasons_from

__all__ = ["MAX_REASONS", "Decision", "ItemScorer", "OfferRanker", "ScoredOffer", "reasons_from"]


@dataclass(frozen=True)
class ScoredOffer:
    """One offer as served: the model score and the reasons behind it."""

    offer: Offer
    item: Item | None
    score: float
    reasons: list[str]
    debug: dict[str, float | None] | None = None
    """The arbitration formula's parts (propensity, value, context_weight, lever, priority)."""
    policy: str = "greedy"
    """Which policy chose the offer (``greedy`` or ``explore``: recommender.core.exploration)."""
    probability: float = 1.0
    """Exact probability that the policy chose this offer for its slot."""


@dataclass(frozen=True)
class Decision:
    """The offers for one request; ``fallback`` when they are not personalised."""

    offers: list[ScoredOffer]
    fallback: bool
    stage: str = "stimulus"
    decision_id: str = ""
    note: str | None = None
    """Why the offers are what they are when not obvious (e.g. nothing cleared the floor)."""


class ItemScorer:
    """Scores every item for a profile: the model's opinion, blended with the profile's memory.

    The model's scores are standardised per request (z-scores over all items) so that the
    blend weight means the same for every user. ``recent_boost`` then adds, for each item the
    profile itself holds (``item:<id>`` features: what the user viewed, carted or bought,
    decayed), ``recent_boost * weight / strongest item weight``: real shoppers return to what
    they looked at, and the evaluation decides how much that should count. Items bought within
    ``purchase_exclusion_s`` score ``-inf``.
    """

    def __init__(
        self, model: Model, *, purchase_exclusion_s: float, recent_boost: float = 0.0
    ) -> None:
        self.model = model
        self.purchase_exclusion_s = purchase_exclusion_s
        self.recent_boost = recent_boost

    def excluded(self, profile: Profile | None, now: float) -> set[str]:
        """Items bought recently enough not to be offered again."""
        if profile is None:
            return set()
        return {
            item for item, ts in profile.purchases.items() if now - ts < self.purchase_exclusion_s
        }

    def scores(self, profile: Profile | None, now: float) -> npt.NDArray[np.float64] | None:
        """Blended score of every model item, or None when the profile says nothing known."""
        if profile is None:
            return None
        weights = profile.normalised()
        raw = self.model.scores(weights) if weights else None
        if raw is None:
            return None
        return self.blend(raw, weights, profile, now)

    def blend(
        self,
        raw: npt.NDArray[np.float32],
        weights: Mapping[str, float],
        profile: Profile,
        now: float,
    ) -> npt.NDArray[np.float64]:
        """:meth:`scores` from the model's raw scores for ``weights`` (the profile's
        normalised weights), for a caller that needs ``raw`` too and computes it once."""
        scores = raw.astype(np.float64)
        scores -= scores.mean()
        spread = scores.std()
        if spread > 0:
            scores /= spread
        if self.recent_boost > 0.0:
            seen = [
                (self.model.item_index[name[5:]], w)
                for name, w in weights.items()
                if name.startswith("item:") and name[5:] in self.model.item_index
            ]
            if seen:
                strongest = max(w for _, w in seen)
                for position, w in seen:
                    scores[position] += self.recent_boost * w / strongest
        for item in self.excluded(profile, now):
            bought = self.model.item_index.get(item)
            if bought is not None:
                scores[bought] = -np.inf
        return scores

    def top(self, profile: Profile | None, k: int, now: float) -> list[int] | None:
        """Indices of the k best items (fewer if fewer can be offered), or None as in scores."""
        scores = self.scores(profile, now)
        return None if scores is None else top_k(scores, k)


def top_k(scores: npt.NDArray[np.float64], k: int) -> list[int]:
    """Indices of the k largest finite scores, best first (ties: lower index first)."""
    n = min(k, int(np.isfinite(scores).sum()))
    if n <= 0:
        return []
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.lexsort((top, -scores[top]))]
    return [int(i) for i in top]


class OfferRanker:
    """Scores every offer for a profile with the model and picks the best k."""

    def __init__(
        self,
        model: Model,
        catalog: Catalog,
        offers: Sequence[Offer],
        *,
        purchase_exclusion_s: float,
        recent_boost: float = 0.0,
    ) -> None:
        self.model = model
        self.catalog = catalog
        self.scorer = ItemScorer(
            model, purchase_exclusion_s=purchase_exclusion_s, recent_boost=recent_boost
        )
        # One offer per item (the most valuable); offers on items the model never saw can
        # only appear as fallbacks.
        best: dict[str, Offer] = {}
        for offer in offers:
            if offer.item_id not in best or offer.value > best[offer.item_id].value:
                best[offer.item_id] = offer
        self.offers = [o for o in best.values() if o.item_id in model.item_index]
        self.offer_items = np.array(
            [model.item_index[o.item_id] for o in self.offers], dtype=np.intp
        )
        rank = {item: r for r, item in enumerate(model.popular)}
        self.popular_offers = sorted(
            best.values(), key=lambda o: (rank.get(o.item_id, len(rank)), o.offer_id)
        )

    def _popular(self, k: int, excluded: set[str]) -> Decision:
        chosen = [o for o in self.popular_offers if o.item_id not in excluded][:k]
        offers = [
            ScoredOffer(o, self.catalog.get(o.item_id), 0.0, ["popular with other shoppers"])
            for o in chosen
        ]
        return Decision(offers, fallback=True)

    def rank(self, profile: Profile | None, k: int, now: float) -> Decision:
        """The k best offers for ``profile``; popular ones, flagged, when it says nothing."""
        excluded = self.scorer.excluded(profile, now)
        item_scores = self.scorer.scores(profile, now)
        if item_scores is None or not self.offers or profile is None:
            return self._popular(k, excluded)
        scores = item_scores[self.offer_items]
        top = top_k(scores, k)
        if not top:
            return self._popular(k, excluded)
        weights = profile.normalised()
        token_order = {
            name[2:]: i for i, name in enumerate(profile.weights) if name.startswith("q:")
        }
        chosen = []
        for j in top:
            offer = self.offers[j]
            item_pos = int(self.offer_items[j])
            reasons = reasons_from(
                self.model.contributions(weights, item_pos), self.catalog, token_order
            )
            if self.scorer.recent_boost > 0 and weights.get(f"item:{offer.item_id}", 0.0) > 0:
                reasons = ["you looked at it recently", *reasons][:MAX_REASONS]
            chosen.append(
                ScoredOffer(offer, self.catalog.get(offer.item_id), float(scores[j]), reasons)
            )
        return Decision(chosen, fallback=False)
