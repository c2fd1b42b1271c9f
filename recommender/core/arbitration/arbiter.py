"""The :class:`Arbiter`: one request's offers, as a short pipeline over the package's steps."""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np

from recommender.core.arbitration.explain import Explainer, finish, search_order, with_ratings
from recommender.core.arbitration.priority import Priority
from recommender.core.arbitration.rules import Rules
from recommender.core.arbitration.slots import fill_slots
from recommender.core.arbitration.table import ItemTable, OfferTable, Shortlist, resolve
from recommender.core.arbitration.types import (
    ArbitrationConfig,
    BoolArray,
    Candidate,
    Exposure,
    FloatArray,
    IntArray,
    OfferRequest,
    RatingLike,
)
from recommender.core.catalog import Catalog
from recommender.core.hybrid import serving_scorer
from recommender.core.journey import stage_of
from recommender.core.model import Model
from recommender.core.offers import OfferCatalog
from recommender.core.placements import Placement, Placements
from recommender.core.profile import Profile
from recommender.core.reasons import say
from recommender.core.scoring import Decision

FLOOR_NOTE = "no applicable offer cleared the relevance floor"


class Arbiter:
    """Decides the offers of one request; pure logic over the model, catalog and offers.

    Item scores and propensities come from :func:`~recommender.core.hybrid.serving_scorer`:
    the hybrid ranker when the model carries its tables and ``config.hybrid`` allows it, else
    the model blended with the profile's items and its Platt calibration; every rule after
    them is the same either way."""

    def __init__(
        self,
        model: Model,
        catalog: Catalog,
        offers: OfferCatalog,
        placements: Placements | None = None,
        config: ArbitrationConfig | None = None,
        rng: random.Random | None = None,
        *,
        items: ItemTable | None = None,
    ) -> None:
        self.model = model
        self.catalog = catalog
        self.offers = offers
        self.placements = placements or Placements()
        self.config = config or ArbitrationConfig()
        self.rng = rng or random.Random()
        self.scorer = serving_scorer(
            model,
            purchase_exclusion_s=self.config.purchase_exclusion_s,
            recent_boost=self.config.recent_boost,
            hybrid=self.config.hybrid,
        )
        self.items = items if items is not None else ItemTable(model, catalog)
        self.table = OfferTable(offers.offers, model.item_index, self.items.category_ids)
        specs = offers.offers
        self.rules = Rules(self.table, specs, self.items, model.item_index, self.config)
        self.priority = Priority(self.table, specs, self.items, model, self.config)
        self.explainer = Explainer(model, self.items, self.config.recent_boost, self.scorer)

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
            items=self.items,
        )

    def decide(self, profile: Profile | None, request: OfferRequest, now: float) -> Decision:
        """The offers for one request (see the package docstring for the steps)."""
        cfg = self.config
        placement, k, stage = self._frame(profile, request, now)
        weights = profile.normalised() if profile is not None else {}
        row = self.model.user_row(weights) if weights else None
        raw = self.model.row_scores(row) if row is not None else None
        if raw is None or profile is None:
            return self.fallback(profile, request, now, stage=stage)
        blended, propensity = self.scorer.score(raw, weights, profile, now)
        blocked = self._blocked(profile, placement, now, blended)
        share, origin = self.priority.complement_share(profile, stage, request.context_item, now)
        short = self._shortlist(stage, placement, request, now, blended, blocked)
        short = short.keep(~(propensity[short.items] < cfg.relevance_floor))
        short = short.keep(self._allowed(short, weights, profile, now))
        if not len(short):
            if cfg.floor_fallback:
                return self.fallback(profile, request, now, stage=stage, note=FLOOR_NOTE)
            return finish([], False, stage, request, FLOOR_NOTE)
        priced = self.priority.price(short, propensity[short.items], placement, stage, share)
        chosen = fill_slots(
            self._capped(priced.order, short.items, profile, placement),
            short.items,
            priced.priority,
            lambda j: self.priority.candidate(priced, j, blended),
            k,
            placement,
            request,
            self.items.item_category_id,
            self.rng,
        )
        tokens = search_order(profile)
        offers = []
        cands = [cand for cand, _, _ in chosen]
        sources = self.scorer.lifted_by_many(weights, [cand.item_id for cand in cands])
        explained = self.explainer.reasons_many(
            cands, weights, tokens, origin, request, row, sources
        )
        for (cand, policy, probability), reasons in zip(chosen, explained, strict=True):
            offers.append(self.explainer.served(cand, reasons, request, policy, probability))
        return finish(offers, False, stage, request, None)

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
        placement, k, stage = self._frame(profile, request, now, stage)
        weights = profile.normalised() if profile is not None else {}
        popularity = self.items.popularity
        blocked = self._blocked(profile, placement, now, popularity)
        short = self._shortlist(stage, placement, request, now, popularity, blocked)
        short = short.keep(self._allowed(short, weights, profile, now))
        cw = self.priority.context_weights(placement)[short.offers]
        order = np.lexsort((self.table.id_rank[short.offers], -popularity[short.items]))
        order = self._capped(order, short.items, profile, placement)

        def candidate(j: int) -> Candidate:
            index = int(short.items[j])
            spec = self.offers.offers[short.offers[j]]
            item_id, category = self.model.item_ids[index], self.items.item_category[index]
            return Candidate(spec, index, item_id, category, None, float(cw[j]), None)

        greedy = Placement(name=placement.name)  # popular lists do not explore
        chosen = fill_slots(
            order,
            short.items,
            None,
            candidate,
            k,
            greedy,
            request,
            self.items.item_category_id,
            self.rng,
        )
        popular = [say(request.lang, "popular")]
        offers = [self.explainer.served(c, popular, request, p, q) for c, p, q in chosen]
        return finish(offers, True, stage, request, note)

    def with_ratings(
        self, decision: Decision, ratings: Mapping[str, RatingLike], lang: str
    ) -> Decision:
        """The decision with social proof for items with at least ``min_ratings`` ratings."""
        return with_ratings(decision, ratings, lang, self.config.min_ratings)

    # --- steps shared by decide and fallback ---------------------------------------------
    def _frame(
        self,
        profile: Profile | None,
        request: OfferRequest,
        now: float,
        stage: str | None = None,
    ) -> tuple[Placement, int, str]:
        """The request's placement, its number of slots and the user's stage (unless given)."""
        cfg = self.config
        placement = self.placements.get(request.placement)
        k = request.k or placement.k or cfg.default_k
        if stage is None:
            stage = stage_of(profile, now, cfg.smot_window_s, cfg.half_life_s)
        return placement, k, stage

    def _blocked(
        self, profile: Profile | None, placement: Placement, now: float, scores: FloatArray
    ) -> BoolArray:
        """Items not to offer: those without a finite score, the rules' (recent purchases and
        their substitutes), and the user's own items when the placement allows none of them
        (``exclude_seen``, ``max_seen: 0``; a higher ``max_seen`` is :meth:`_capped`)."""
        blocked = self.rules.blocked(profile, now)
        blocked |= ~np.isfinite(scores)
        if placement.seen_cap == 0:
            blocked |= self.rules.seen(profile)
        return blocked

    def _capped(
        self, order: IntArray, items: IntArray, profile: Profile | None, placement: Placement
    ) -> IntArray:
        """``order`` (best first) without the offers of the user's own items after the first
        ``max_seen`` of them: the other slots go to items new to the user."""
        cap = placement.seen_cap
        if not cap:  # no cap, or none allowed (blocked already)
            return order
        ranked = items[order]
        at = np.flatnonzero(self.rules.seen(profile)[ranked])
        if len(at) <= cap:
            return order
        rank: dict[int, int] = {}  # a seen item's place among the seen items in ``order``
        keep = np.ones(len(order), dtype=bool)
        for pos in at.tolist():
            if rank.setdefault(int(ranked[pos]), len(rank)) >= cap:
                keep[pos] = False
        return order[keep]

    def _shortlist(
        self,
        stage: str,
        placement: Placement,
        request: OfferRequest,
        now: float,
        scores: FloatArray,
        blocked: BoolArray,
    ) -> Shortlist:
        """The applicable offers that stand for an unblocked item (best by ``scores``)."""
        offers = self.rules.applicable(stage, placement, request, now)
        return resolve(self.table, self.items, offers, scores, blocked)

    def _allowed(
        self, short: Shortlist, weights: Mapping[str, float], profile: Profile | None, now: float
    ) -> BoolArray:
        # A Profile is an Exposure; the Protocol's isinstance costs ~20 us, so only other
        # types are checked against it.
        exposure: Exposure | None = None
        if type(profile) is Profile or isinstance(profile, Exposure):
            exposure = profile
        return self.rules.allowed(short.offers, weights, exposure, now)
