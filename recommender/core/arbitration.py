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
   propensity is the calibrated probability (:mod:`recommender.offline.propensity`) and
   ``context_weight = placement weight of the offer's group x (1 + complement_boost x share
   of the offer's category after what the user bought or is looking at) x (stage_boost if
   the offer names the user's stage)``.
5. **Relevance floor**: offers whose propensity is below ``relevance_floor`` are dropped; if
   none is left the answer is empty (or, with ``floor_fallback``, popular offers flagged).
6. **Diversity and exploration**: slots are filled best first, never two offers for the same
   item or the same category (unless the request allows it), each slot by the placement's
   :class:`~recommender.core.exploration.ExplorationPolicy`, which records its exact probability.

Performance: the rules that depend only on the offer and the request (validity window,
placement, channel, stage) and the priority are evaluated for all offers at once on numpy
arrays precomputed when the arbiter is built (:class:`_OfferArrays`); a category offer's best
item is found for all categories in one masked ``argmax``. The rules that need Python per offer
(eligibility conditions, impression and dismissal counts) run only on the offers that are left
after the relevance floor, and for a :class:`~recommender.core.profile.Profile` only on the offers
its exposure history names. Candidates stay arrays until the slots are filled; only the chosen
ones become :class:`Candidate` objects. The result is exactly that of checking every rule on
every offer in turn.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from recommender.core.catalog import Catalog
from recommender.core.journey import SMOT, stage_of
from recommender.core.model import Model
from recommender.core.offers import OfferCatalog, OfferSpec
from recommender.core.placements import Placement, Placements
from recommender.core.profile import Profile
from recommender.core.reasons import MAX_REASONS, reasons_from, say
from recommender.core.scoring import Decision, ItemScorer, ScoredOffer, ServedOffer

log = logging.getLogger("zmot.decisions")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

DAY = 86400.0


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


class _OfferArrays:
    """The request-independent facts of every offer as arrays (index = position in the
    offer catalog), built once per offer catalog."""

    def __init__(
        self,
        offers: tuple[OfferSpec, ...],
        item_index: Mapping[str, int],
        category_id: Mapping[str, int],
    ) -> None:
        n = len(offers)
        self.n = n
        self.item = np.array(
            [item_index.get(o.item_id, -1) if o.item_id is not None else -1 for o in offers],
            dtype=np.intp,
        )
        self.is_category = np.array([o.item_id is None for o in offers], dtype=bool)
        self.category = np.array(
            [category_id.get(o.category or "", -1) for o in offers], dtype=np.intp
        )
        self.value = np.array([o.value for o in offers], dtype=np.float64)
        self.lever = np.array([o.lever for o in offers], dtype=np.float64)
        inf = float("inf")
        self.starts = np.array(
            [-inf if o.starts_at is None else o.starts_at for o in offers], dtype=np.float64
        )
        self.ends = np.array(
            [inf if o.ends_at is None else o.ends_at for o in offers], dtype=np.float64
        )
        self.cap = np.array(
            [inf if o.max_impressions is None else o.max_impressions for o in offers],
            dtype=np.float64,
        )
        self.ruled = np.array([bool(o.eligibility) for o in offers], dtype=bool)
        self.open_placements = np.array([not o.placements for o in offers], dtype=bool)
        self.open_channels = np.array([not o.channels for o in offers], dtype=bool)
        self.open_stages = np.array([not o.stages for o in offers], dtype=bool)
        self.in_placement = self._member(offers, lambda o: o.placements)
        self.in_channel = self._member(offers, lambda o: o.channels)
        self.in_stage = self._member(offers, lambda o: o.stages)
        self.none = np.zeros(n, dtype=bool)
        self.groups = sorted({o.group for o in offers})
        group_id = {g: i for i, g in enumerate(self.groups)}
        self.group = np.array([group_id[o.group] for o in offers], dtype=np.intp)
        order = sorted(range(n), key=lambda i: offers[i].offer_id)
        self.id_rank = np.empty(n, dtype=np.intp)
        rank = -1
        previous: str | None = None
        for i in order:  # equal ids share a rank, so ties keep catalog order (stable sort)
            if offers[i].offer_id != previous:
                rank += 1
                previous = offers[i].offer_id
            self.id_rank[i] = rank
        self.by_id: dict[str, list[int]] = {}
        for i, o in enumerate(offers):
            self.by_id.setdefault(o.offer_id, []).append(i)

    @staticmethod
    def _member(
        offers: tuple[OfferSpec, ...], names: Callable[[OfferSpec], frozenset[str]]
    ) -> dict[str, BoolArray]:
        out: dict[str, BoolArray] = {}
        for i, o in enumerate(offers):
            for name in names(o):
                out.setdefault(name, np.zeros(len(offers), dtype=bool))[i] = True
        return out


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
        # Category ids of the items (-1: none) and each category's members, padded with
        # ``n`` (a -inf score slot) so that one argmax finds every category's best item.
        self.categories = sorted(self.category_items)
        self.category_ids = category_id = {c: i for i, c in enumerate(self.categories)}
        self.item_category_id = np.array(
            [category_id.get(c, -1) if c else -1 for c in self.item_category], dtype=np.intp
        )
        width = max((len(v) for v in self.category_items.values()), default=0)
        self.category_pad = np.full((len(self.categories), max(width, 1)), n, dtype=np.intp)
        for c, members in self.category_items.items():
            self.category_pad[category_id[c], : len(members)] = members
        self.arrays = _OfferArrays(offers.offers, model.item_index, category_id)
        self._placement_weights: dict[int, tuple[Placement, FloatArray]] = {}

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

    # --- rules ----------------------------------------------------------------------------
    def _applicable(
        self, stage: str, placement: Placement, request: OfferRequest, now: float
    ) -> BoolArray:
        """Offers that pass the rules of the request alone: validity window, placement,
        channel and stage (eligibility and exposure are :meth:`_allowed`)."""
        a = self.arrays
        ok = (a.starts <= now) & (now < a.ends)
        ok &= a.open_placements | a.in_placement.get(request.placement or "", a.none)
        channel_ok = a.none | True
        if request.channel is not None:
            channel_ok = a.in_channel.get(request.channel, a.none)
        if placement.channels:
            shared = a.none.copy()
            for name in placement.channels:
                shared |= a.in_channel.get(name, a.none)
            channel_ok = channel_ok & shared
        ok &= a.open_channels | channel_ok
        ok &= a.open_stages | a.in_stage.get(stage, a.none)
        return ok

    def _allowed(
        self,
        offers: IntArray,
        weights: Mapping[str, float],
        exposure: Exposure | None,
        now: float,
    ) -> BoolArray:
        """Which of ``offers`` (catalog positions) pass eligibility and the contact policy.

        Exact for any :class:`Exposure`; for a :class:`Profile` only the offers its exposure
        history names are counted (every other count is 0)."""
        a = self.arrays
        specs = self.offers.offers
        ok = np.ones(len(offers), dtype=bool)
        for j in np.flatnonzero(a.ruled[offers]).tolist():
            if not specs[offers[j]].eligible(weights):
                ok[j] = False
        if exposure is None:
            return ok
        if type(exposure) is Profile:
            if self.config.dismiss_limit <= 0:
                return np.zeros(len(offers), dtype=bool)
            ok &= ~(a.cap[offers] <= 0)
            touched = exposure.shown.keys() | exposure.dismissed.keys()
            if not touched:
                return ok
            position = {int(o): j for j, o in enumerate(offers.tolist())}
            check = [
                position[i]
                for offer_id in touched
                for i in a.by_id.get(offer_id, ())
                if i in position
            ]
        else:
            check = list(range(len(offers)))
        for j in check:
            if ok[j] and self._capped(specs[offers[j]], exposure, now):
                ok[j] = False
        return ok

    def _capped(self, spec: OfferSpec, exposure: Exposure, now: float) -> bool:
        cfg = self.config
        if spec.max_impressions is not None and (
            exposure.impressions(spec.offer_id, now, cfg.cap_window_s) >= spec.max_impressions
        ):
            return True
        return exposure.dismissals(spec.offer_id, now, cfg.dismiss_window_s) >= cfg.dismiss_limit

    def _resolve(
        self, offers: IntArray, scores: FloatArray, blocked: BoolArray
    ) -> tuple[IntArray, BoolArray]:
        """The model item each offer stands for (its item, or the best unblocked item of its
        category: the first best in item order) and whether it has one."""
        a = self.arrays
        item = a.item[offers]
        found = item >= 0
        found[found] = ~blocked[item[found]]
        categorical = a.is_category[offers]
        if categorical.any() and len(self.categories):
            padded = np.append(np.where(blocked, -np.inf, scores), -np.inf)
            table = padded[self.category_pad]
            best = table.argmax(axis=1)
            rows = np.arange(len(self.categories))
            best_item = self.category_pad[rows, best]
            has_best = table[rows, best] > -np.inf
            category = a.category[offers]
            known = categorical & (category >= 0)
            item = np.where(known, best_item[np.maximum(category, 0)], item)
            found = np.where(categorical, known & has_best[np.maximum(category, 0)], found)
        return item, found

    def _context_weights(self, placement: Placement) -> FloatArray:
        """The placement weight of every offer's group (cached per placement)."""
        cached = self._placement_weights.get(id(placement))
        if cached is None or cached[0] is not placement:
            by_group = np.array(
                [placement.context_weight(g) for g in self.arrays.groups], dtype=np.float64
            )
            cached = (placement, by_group[self.arrays.group])
            self._placement_weights[id(placement)] = cached
        return cached[1]

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
        raw = self.model.scores(weights) if weights else None
        if raw is None or profile is None:
            return self.fallback(profile, request, now, stage=stage)
        blended = self.scorer.blend(raw, weights, profile, now)
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
        a = self.arrays
        offers = np.flatnonzero(self._applicable(stage, placement, request, now))
        items, found = self._resolve(offers, blended, blocked)
        offers, items = offers[found], items[found]
        p = propensity[items]
        keep = ~(p < cfg.relevance_floor)
        offers, items, p = offers[keep], items[keep], p[keep]
        keep = self._allowed(offers, weights, exposure, now)
        offers, items, p = offers[keep], items[keep], p[keep]
        if not len(offers):
            note = "no applicable offer cleared the relevance floor"
            if cfg.floor_fallback:
                return self.fallback(profile, request, now, stage=stage, note=note)
            return self._finish([], False, stage, request, profile, note)
        by_category = np.zeros(len(self.categories) + 1)  # last slot: items of no category
        for category, value in share.items():
            index = self.category_ids.get(category)
            if index is not None:
                by_category[index] = value
        comp = by_category[self.item_category_id[items]]
        cw_placement = self._context_weights(placement)[offers]
        cw_complement = 1.0 + cfg.complement_boost * comp
        in_stage = a.in_stage.get(stage, a.none)[offers]
        cw_stage = np.where(in_stage, cfg.stage_boost, 1.0)
        cw = cw_placement * cw_complement * cw_stage
        priority = p * a.value[offers] * cw * a.lever[offers]
        order = np.lexsort((a.id_rank[offers], -priority))

        def candidate(j: int) -> Candidate:
            index = int(items[j])
            return Candidate(
                self.offers.offers[offers[j]],
                index,
                self.model.item_ids[index],
                self.item_category[index],
                float(p[j]),
                float(cw[j]),
                float(priority[j]),
                float(blended[index]),
                {
                    "placement_weight": float(cw_placement[j]),
                    "complement_weight": float(cw_complement[j]),
                    "stage_weight": float(cw_stage[j]),
                },
            )

        chosen = self._fill(order, items, priority, candidate, k, placement, request)
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

    def _fill(
        self,
        order: IntArray,
        items: IntArray,
        priority: FloatArray | None,
        candidate: Callable[[int], Candidate],
        k: int,
        placement: Placement,
        request: OfferRequest,
    ) -> list[tuple[Candidate, str, float]]:
        """Slots best first, diverse, each chosen by the placement's exploration policy.

        ``order`` ranks the candidates (positions into ``items``/``priority``) best first;
        ``candidate`` builds the chosen ones."""
        chosen: list[tuple[Candidate, str, float]] = []
        ranked_items = items[order]
        ranked_categories = self.item_category_id[ranked_items]
        if priority is None:
            ranked_priority = np.zeros(len(order))
        else:  # as ``priority or 0.0``: -0.0 becomes 0.0
            ranked_priority = priority[order]
            ranked_priority = np.where(ranked_priority == 0.0, 0.0, ranked_priority)
        remaining = np.arange(len(order))
        while len(remaining) and len(chosen) < k:
            index, policy, probability = placement.exploration.choose(
                ranked_priority[remaining].tolist(), self.rng
            )
            pick = int(remaining[index])
            chosen.append((candidate(int(order[pick])), policy, probability))
            alive = ranked_items[remaining] != ranked_items[pick]
            category = ranked_categories[pick]
            if category >= 0 and not request.same_category:
                alive &= ranked_categories[remaining] != category
            remaining = remaining[alive]
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
        offer = ServedOffer(cand.spec.offer_id, cand.item_id, cand.spec.title, cand.spec.value)
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
        a = self.arrays
        offers = np.flatnonzero(self._applicable(stage, placement, request, now))
        items, found = self._resolve(offers, self.popularity, blocked)
        offers, items = offers[found], items[found]
        keep = self._allowed(offers, weights, exposure, now)
        offers, items = offers[keep], items[keep]
        cw = self._context_weights(placement)[offers]
        score = self.popularity[items]
        order = np.lexsort((a.id_rank[offers], -score))

        def candidate(j: int) -> Candidate:
            index = int(items[j])
            spec = self.offers.offers[offers[j]]
            category = self.item_category[index]
            cand = Candidate(
                spec, index, self.model.item_ids[index], category, None, float(cw[j]), None
            )
            cand.score = float(score[j])
            return cand

        greedy = Placement(name=placement.name)  # popular lists do not explore
        chosen = self._fill(order, items, None, candidate, k, greedy, request)
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
