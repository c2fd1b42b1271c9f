"""Next-best-offer arbitration: rules first, then priority, then diversity and exploration.

For one request (a profile, a placement, a channel, maybe the item on the page):

1. **Applicability**: each offer of the catalog must be valid now (``starts_at``/``ends_at``),
   allowed in the placement and the channel, suit the user's journey stage, and its
   eligibility conditions must hold on the profile.
2. **Contact policy**: an offer shown ``max_impressions`` times to the user within the cap
   window (all channels together) is not shown; one dismissed ``dismiss_limit`` times within
   the dismissal window is suppressed (counts from the profile's feedback history).
3. **Suitability**: the bought item and its direct substitutes (same category) are not offered
   for ``substitute_window_s`` after a purchase; a category offer resolves to the user's best
   remaining item of that category.
4. **Arbitration**: ``priority = propensity x value x context_weight x lever`` where
   propensity is the calibrated probability (:mod:`recommender.propensity`) and
   ``context_weight = placement weight of the offer's group x (1 + complement_boost x share
   of the offer's category after what the user bought or is looking at) x (stage_boost if
   the offer names the user's stage)``.
5. **Relevance floor**: offers whose propensity is below ``relevance_floor`` are dropped; if
   none is left the answer is empty (or, with ``floor_fallback``, popular offers flagged).
6. **Diversity and exploration**: slots are filled best first, never two offers for the same
   item or the same category (unless the request allows it), each slot by the placement's
   :class:`~recommender.exploration.ExplorationPolicy`, which records its exact probability.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from recommender.catalog import Catalog, Offer
from recommender.journey import SMOT, stage_of
from recommender.model import Model
from recommender.offers import OfferCatalog, OfferSpec
from recommender.placements import Placement, Placements
from recommender.profile import Profile
from recommender.reasons import MAX_REASONS, reasons_from, say
from recommender.scoring import Decision, ItemScorer, ScoredOffer

log = logging.getLogger("zmot.decisions")

DAY = 86400.0


@runtime_checkable
class Exposure(Protocol):
    """Per-user feedback counts (the profile's, once the feedback loop keeps them)."""

    def impressions(self, offer_id: str, now: float, window_s: float) -> int: ...

    def dismissals(self, offer_id: str, now: float, window_s: float) -> int: ...


class RatingLike(Protocol):
    """A rating aggregate (:class:`recommender.feedback.ItemRating`)."""

    @property
    def count(self) -> int: ...

    @property
    def mean(self) -> float: ...


@dataclass(frozen=True)
class ArbitrationConfig:
    """Knobs of arbitration (from :class:`~recommender.settings.Settings`)."""

    purchase_exclusion_s: float = 30 * DAY
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


class Arbiter:
    """Decides the offers of one request; pure logic over the model, catalog and offers."""

    def __init__(
        self,
        model: Model,
        catalog: Catalog,
        offers: OfferCatalog,
        placements: Placements | None = None,
        config: ArbitrationConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.model = model
        self.catalog = catalog
        self.offers = offers
        self.placements = placements or Placements()
        self.config = config or ArbitrationConfig()
        self.rng = rng or random.Random()
        self.scorer = ItemScorer(
            model,
            purchase_exclusion_s=self.config.purchase_exclusion_s,
            recent_boost=self.config.recent_boost,
        )
        n = len(model.item_ids)
        self.item_category: list[str | None] = []
        by_category: dict[str, list[int]] = {}
        for i, item_id in enumerate(model.item_ids):
            item = catalog.get(item_id)
            category = item.category if item else None
            self.item_category.append(category)
            if category:
                by_category.setdefault(category, []).append(i)
        self.category_items = {c: np.array(v, dtype=np.intp) for c, v in by_category.items()}
        rank = {item: r for r, item in enumerate(model.popular)}
        self.popularity = np.array(
            [-float(rank.get(item_id, len(rank) + i)) for i, item_id in enumerate(model.item_ids)]
        )
        self.n_items = n

    @property
    def version(self) -> str:
        return self.offers.version

    def with_offers(self, offers: OfferCatalog, placements: Placements | None = None) -> Arbiter:
        """A new arbiter over other offers (and placements), sharing model and catalog."""
        return Arbiter(
            self.model,
            self.catalog,
            offers,
            self.placements if placements is None else placements,
            self.config,
            self.rng,
        )

    # --- the Ranker protocol of the API (used by older callers) ------------------------
    def rank(self, profile: Profile | None, k: int, now: float) -> Decision:
        return self.decide(profile, OfferRequest(k=k), now)

    # --- rules ----------------------------------------------------------------------------
    def _applicable(
        self,
        spec: OfferSpec,
        weights: Mapping[str, float],
        stage: str,
        placement: Placement,
        request: OfferRequest,
        exposure: Exposure | None,
        now: float,
    ) -> bool:
        if not spec.valid_at(now):
            return False
        if spec.placements and (request.placement or "") not in spec.placements:
            return False
        if spec.channels:
            if request.channel is not None and request.channel not in spec.channels:
                return False
            if placement.channels and not (spec.channels & placement.channels):
                return False
        if spec.stages and stage not in spec.stages:
            return False
        if spec.eligibility and not spec.eligible(weights):
            return False
        if exposure is not None:
            cfg = self.config
            if spec.max_impressions is not None and (
                exposure.impressions(spec.offer_id, now, cfg.cap_window_s) >= spec.max_impressions
            ):
                return False
            if exposure.dismissals(spec.offer_id, now, cfg.dismiss_window_s) >= cfg.dismiss_limit:
                return False
        return True

    def _blocked(self, profile: Profile | None, now: float) -> npt.NDArray[np.bool_]:
        """Items that may not be offered: bought recently, or a substitute of such a purchase."""
        blocked = np.zeros(self.n_items, dtype=bool)
        if profile is None:
            return blocked
        for item_id, ts in profile.purchases.items():
            age = now - ts
            index = self.model.item_index.get(item_id)
            if index is not None and age < self.config.purchase_exclusion_s:
                blocked[index] = True
            if age < self.config.substitute_window_s:
                category = self._category(item_id)
                if category in self.category_items:
                    blocked[self.category_items[category]] = True
        return blocked

    def _category(self, item_id: str) -> str | None:
        item = self.catalog.get(item_id)
        return item.category if item else None

    def _complement_share(
        self, profile: Profile | None, stage: str, context_item: str | None, now: float
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Share of each category after the user's recent purchases or the page's item, and
        which source category gave it (for the reason)."""
        sources: list[str] = []
        if context_item is not None:
            category = self._category(context_item)
            if category:
                sources.append(category)
        if profile is not None and stage == SMOT:
            for item_id, ts in profile.purchases.items():
                category = self._category(item_id)
                if category and now - ts < self.config.smot_window_s:
                    sources.append(category)
        share: dict[str, float] = {}
        origin: dict[str, str] = {}
        for src in sources:
            for category, value in self.model.complements.get(src, {}).items():
                if value > share.get(category, 0.0):
                    share[category] = value
                    origin[category] = src
        return share, origin

    # --- the decision ---------------------------------------------------------------------
    def decide(
        self,
        profile: Profile | None,
        request: OfferRequest,
        now: float,
    ) -> Decision:
        """The offers for one request (see the module docstring for the steps)."""
        cfg = self.config
        placement = self.placements.get(request.placement)
        k = request.k or placement.k or cfg.default_k
        stage = stage_of(profile, now, cfg.smot_window_s, cfg.half_life_s)
        weights = profile.normalised() if profile is not None else {}
        exposure = profile if isinstance(profile, Exposure) else None
        blended = self.scorer.scores(profile, now)
        raw = self.model.scores(weights) if weights else None
        if blended is None or raw is None or profile is None:
            return self.fallback(profile, request, now, stage=stage)
        recent = np.zeros(self.n_items)
        seen = [
            (self.model.item_index[n[5:]], w)
            for n, w in weights.items()
            if n.startswith("item:") and n[5:] in self.model.item_index
        ]
        if seen:
            top = max(w for _, w in seen)
            for position, w in seen:
                recent[position] = w / top
        margin = raw.astype(np.float64)
        margin -= margin.mean()  # comparable across users: their bias term cancels
        propensity = self.model.calibration.probability(margin, recent)
        blocked = self._blocked(profile, now) | ~np.isfinite(blended)
        share, origin = self._complement_share(profile, stage, request.context_item, now)
        candidates: list[Candidate] = []
        for spec in self.offers.offers:
            if not self._applicable(spec, weights, stage, placement, request, exposure, now):
                continue
            index = self._resolve(spec, blended, blocked)
            if index is None:
                continue
            p = float(propensity[index])
            if p < cfg.relevance_floor:
                continue
            category = self.item_category[index]
            comp = share.get(category, 0.0) if category else 0.0
            cw_placement = placement.context_weight(spec.group)
            cw_complement = 1.0 + cfg.complement_boost * comp
            cw_stage = cfg.stage_boost if stage in spec.stages else 1.0
            cw = cw_placement * cw_complement * cw_stage
            candidates.append(
                Candidate(
                    spec,
                    index,
                    self.model.item_ids[index],
                    category,
                    p,
                    cw,
                    p * spec.value * cw * spec.lever,
                    float(blended[index]),
                    {
                        "placement_weight": cw_placement,
                        "complement_weight": cw_complement,
                        "stage_weight": cw_stage,
                    },
                )
            )
        if not candidates:
            note = "no applicable offer cleared the relevance floor"
            if cfg.floor_fallback:
                return self.fallback(profile, request, now, stage=stage, note=note)
            return self._finish([], False, stage, request, profile, note)
        candidates.sort(key=lambda c: (-(c.priority or 0.0), c.spec.offer_id))
        chosen = self._fill(candidates, k, placement, request)
        token_order = {n[2:]: i for i, n in enumerate(profile.weights) if n.startswith("q:")}
        out = []
        for cand, policy, probability in chosen:
            reasons = reasons_from(
                self.model.contributions(weights, cand.item),
                self.catalog,
                token_order,
                request.lang,
            )
            if self.scorer.recent_boost > 0 and weights.get(f"item:{cand.item_id}", 0.0) > 0:
                reasons = [say(request.lang, "recent"), *reasons]
            if cand.category in origin:
                src = origin[cand.category]
                if request.context_item and src == self._category(request.context_item):
                    label = self._title(request.context_item)
                    reasons = [say(request.lang, "context", item=label), *reasons]
                else:
                    reasons.append(say(request.lang, "complement", src=src, cat=cand.category))
            out.append(self._scored(cand, reasons[:MAX_REASONS], request, policy, probability))
        return self._finish(out, False, stage, request, profile, None)

    def _title(self, item_id: str) -> str:
        item = self.catalog.get(item_id)
        return f'"{item.title}"' if item and item.title else item_id

    def _resolve(
        self, spec: OfferSpec, scores: npt.NDArray[np.float64], blocked: npt.NDArray[np.bool_]
    ) -> int | None:
        """The model item an offer stands for: its item, or the best item of its category."""
        if spec.item_id is not None:
            index = self.model.item_index.get(spec.item_id)
            return None if index is None or blocked[index] else index
        members = self.category_items.get(spec.category or "")
        if members is None:
            return None
        free = members[~blocked[members]]
        if not len(free):
            return None
        return int(free[int(np.argmax(scores[free]))])

    def _fill(
        self, candidates: list[Candidate], k: int, placement: Placement, request: OfferRequest
    ) -> list[tuple[Candidate, str, float]]:
        """Slots best first, diverse, each chosen by the placement's exploration policy."""
        chosen: list[tuple[Candidate, str, float]] = []
        items: set[int] = set()
        categories: set[str] = set()
        remaining = list(candidates)
        while remaining and len(chosen) < k:
            index, policy, probability = placement.exploration.choose(
                [c.priority or 0.0 for c in remaining], self.rng
            )
            pick = remaining[index]
            chosen.append((pick, policy, probability))
            items.add(pick.item)
            if pick.category and not request.same_category:
                categories.add(pick.category)
            remaining = [
                c
                for c in remaining
                if c.item not in items and (c.category is None or c.category not in categories)
            ]
        return chosen

    def _scored(
        self,
        cand: Candidate,
        reasons: list[str],
        request: OfferRequest,
        policy: str,
        probability: float,
    ) -> ScoredOffer:
        debug: dict[str, float | None] | None = None
        if request.debug:
            debug = {
                "propensity": cand.propensity,
                "value": cand.spec.value,
                "context_weight": cand.context_weight,
                "lever": cand.spec.lever,
                "priority": cand.priority,
                **cand.parts,
            }
        offer = Offer(cand.spec.offer_id, cand.item_id, cand.spec.title, cand.spec.value)
        return ScoredOffer(
            offer, self.catalog.get(cand.item_id), cand.score, reasons, debug, policy, probability
        )

    def with_ratings(
        self, decision: Decision, ratings: Mapping[str, RatingLike], lang: str
    ) -> Decision:
        """The decision with social proof ("rated 4.6 by 120 buyers") as the last reason of
        each offer whose item has at least ``min_ratings`` ratings."""
        out = []
        for s in decision.offers:
            rating = ratings.get(s.offer.item_id)
            if rating is not None and rating.count >= self.config.min_ratings:
                proof = say(lang, "rating", mean=rating.mean, count=rating.count)
                s = replace(s, reasons=[*s.reasons[: MAX_REASONS - 1], proof])
            out.append(s)
        return replace(decision, offers=out)

    def fallback(
        self,
        profile: Profile | None,
        request: OfferRequest,
        now: float,
        *,
        stage: str | None = None,
        note: str | None = None,
    ) -> Decision:
        """Popular offers that pass every rule, flagged as fallback (no personal scores)."""
        cfg = self.config
        placement = self.placements.get(request.placement)
        k = request.k or placement.k or cfg.default_k
        if stage is None:
            stage = stage_of(profile, now, cfg.smot_window_s, cfg.half_life_s)
        weights = profile.normalised() if profile is not None else {}
        exposure = profile if isinstance(profile, Exposure) else None
        blocked = self._blocked(profile, now)
        candidates: list[Candidate] = []
        for spec in self.offers.offers:
            if not self._applicable(spec, weights, stage, placement, request, exposure, now):
                continue
            index = self._resolve(spec, self.popularity, blocked)
            if index is None:
                continue
            cw = placement.context_weight(spec.group)
            cand = Candidate(
                spec, index, self.model.item_ids[index], self.item_category[index], None, cw, None
            )
            cand.score = float(self.popularity[index])
            candidates.append(cand)
        candidates.sort(key=lambda c: (-c.score, c.spec.offer_id))
        greedy = Placement(name=placement.name)  # popular lists do not explore
        chosen = self._fill(candidates, k, greedy, request)
        popular = say(request.lang, "popular")
        out = [
            self._scored(c, [popular], request, policy, probability)
            for c, policy, probability in chosen
        ]
        out = [
            ScoredOffer(s.offer, s.item, 0.0, s.reasons, s.debug, s.policy, s.probability)
            for s in out
        ]
        return self._finish(out, True, stage, request, profile, note)

    def _finish(
        self,
        offers: list[ScoredOffer],
        fallback: bool,
        stage: str,
        request: OfferRequest,
        profile: Profile | None,
        note: str | None,
    ) -> Decision:
        decision_id = uuid.uuid4().hex
        if log.isEnabledFor(logging.INFO):
            log.info(
                "decision %s placement=%s stage=%s fallback=%s offers=%s",
                decision_id,
                request.placement,
                stage,
                fallback,
                [(s.offer.offer_id, s.policy, round(s.probability, 6)) for s in offers],
            )
        return Decision(offers, fallback, stage, decision_id, note)
