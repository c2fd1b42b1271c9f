"""``priority = propensity x value x context_weight x lever`` for every shortlisted offer.

``propensity`` is the probability of the item the offer stands for, as the arbiter's scorer
gives it: the model's calibration (:func:`recommender.core.scoring.propensities`), or the
hybrid ranker's logistic output when the model carries its tables
(:mod:`recommender.core.hybrid`); ``context_weight = placement weight of the offer's group x
(1 + complement_boost x share of the offer's category after what the user bought or is
looking at) x (stage_boost if the offer names the user's stage)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recommender.core.arbitration.table import ItemTable, OfferTable, Shortlist
from recommender.core.arbitration.types import (
    ArbitrationConfig,
    Candidate,
    FloatArray,
    IntArray,
)
from recommender.core.journey import SMOT
from recommender.core.model import Model
from recommender.core.offers import OfferSpec
from recommender.core.placements import Placement
from recommender.core.profile import Profile


@dataclass(frozen=True)
class Priced:
    """A shortlist with its propensities, context weights and priorities, and the order of
    its offers best first (ties: offer id)."""

    short: Shortlist
    p: FloatArray
    placement_weight: FloatArray
    complement_weight: FloatArray
    stage_weight: FloatArray
    context_weight: FloatArray
    priority: FloatArray
    order: IntArray


class Priority:
    """Prices the offers of one offer catalog (placement weights cached per placement)."""

    def __init__(
        self,
        table: OfferTable,
        specs: tuple[OfferSpec, ...],
        items: ItemTable,
        model: Model,
        config: ArbitrationConfig,
    ) -> None:
        self.table = table
        self.specs = specs
        self.items = items
        self.model = model
        self.config = config
        self._placement_weights: dict[int, tuple[Placement, FloatArray]] = {}

    def context_weights(self, placement: Placement) -> FloatArray:
        """The placement weight of every offer's group (cached per placement)."""
        cached = self._placement_weights.get(id(placement))
        if cached is None or cached[0] is not placement:
            by_group = np.array(
                [placement.context_weight(g) for g in self.table.groups], dtype=np.float64
            )
            cached = (placement, by_group[self.table.group])
            self._placement_weights[id(placement)] = cached
        return cached[1]

    def complement_share(
        self, profile: Profile | None, stage: str, context_item: str | None, now: float
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Share of each category after the user's recent purchases or the page's item, and
        which source category gave it (for the reason)."""
        sources: list[str] = []
        if context_item is not None:
            category = self.items.category_of(context_item)
            if category:
                sources.append(category)
        if profile is not None and stage == SMOT:
            for item_id, ts in profile.purchases.items():
                category = self.items.category_of(item_id)
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

    def price(
        self,
        short: Shortlist,
        p: FloatArray,
        placement: Placement,
        stage: str,
        share: Mapping[str, float],
    ) -> Priced:
        """The priority of every shortlisted offer (``p``: the propensity of its item)."""
        cfg, a = self.config, self.table
        by_category = np.zeros(len(self.items.categories) + 1)  # last: items of no category
        for category, value in share.items():
            index = self.items.category_ids.get(category)
            if index is not None:
                by_category[index] = value
        comp = by_category[self.items.item_category_id[short.items]]
        cw_placement = self.context_weights(placement)[short.offers]
        cw_complement = 1.0 + cfg.complement_boost * comp
        in_stage = a.in_stage.get(stage, a.none)[short.offers]
        cw_stage = np.where(in_stage, cfg.stage_boost, 1.0)
        cw = cw_placement * cw_complement * cw_stage
        priority = p * a.value[short.offers] * cw * a.lever[short.offers]
        order = np.lexsort((a.id_rank[short.offers], -priority))
        return Priced(short, p, cw_placement, cw_complement, cw_stage, cw, priority, order)

    def candidate(self, priced: Priced, j: int, scores: FloatArray) -> Candidate:
        """The ``j``-th shortlisted offer with its priority parts (``scores``: item scores)."""
        index = int(priced.short.items[j])
        return Candidate(
            self.specs[priced.short.offers[j]],
            index,
            self.model.item_ids[index],
            self.items.item_category[index],
            float(priced.p[j]),
            float(priced.context_weight[j]),
            float(priced.priority[j]),
            float(scores[index]),
            {
                "placement_weight": float(priced.placement_weight[j]),
                "complement_weight": float(priced.complement_weight[j]),
                "stage_weight": float(priced.stage_weight[j]),
            },
        )
