"""The rules an offer must pass: validity window, placement, channel, stage, eligibility,
frequency caps, dismissals, and no recent purchase or substitute of one.

The rules that depend only on the offer and the request run on arrays for all offers at once
(:meth:`Rules.applicable`); the ones that need Python per offer (eligibility conditions,
impression and dismissal counts) run only on the shortlist left after the relevance floor, and
for a :class:`~recommender.core.profile.Profile` only on the offers its exposure history names
(:meth:`Rules.allowed`). The result is exactly that of checking every rule on every offer.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from itertools import chain
from math import inf

import numpy as np

from recommender.core.arbitration.table import ItemTable, OfferTable
from recommender.core.arbitration.types import (
    ArbitrationConfig,
    BoolArray,
    Exposure,
    IntArray,
    OfferRequest,
)
from recommender.core.features import item_weights
from recommender.core.offers import OfferSpec
from recommender.core.placements import Placement
from recommender.core.profile import Profile

MAX_REMEMBERED = 1024
"""Most (stage, placement, channel) answers :meth:`Rules.applicable` keeps."""


class Rules:
    """The rules over one offer catalog and one model's items."""

    def __init__(
        self,
        table: OfferTable,
        specs: tuple[OfferSpec, ...],
        items: ItemTable,
        item_index: Mapping[str, int],
        config: ArbitrationConfig,
    ) -> None:
        self.table = table
        self.specs = specs
        self.items = items
        self.item_index = item_index
        self.config = config
        # Every instant an offer starts or ends: between two of them the validity window
        # lets the same offers through, so applicable() answers from _applicable.
        bounds = np.concatenate([table.starts, table.ends])
        self._bounds: list[float] = sorted(set(bounds[np.isfinite(bounds)].tolist()))
        self._applicable: dict[tuple[object, ...], tuple[float, float, IntArray]] = {}

    def applicable(
        self, stage: str, placement: Placement, request: OfferRequest, now: float
    ) -> IntArray:
        """Offers that pass the rules of the request alone: validity window, placement,
        channel and stage (eligibility and exposure are :meth:`allowed`); read-only.

        Remembered per stage, placement and channel until the next instant an offer starts
        or ends (the answer :meth:`_applicable_now` gave, unchanged in between)."""
        key = (stage, request.placement, request.channel, placement.channels)
        known = self._applicable.get(key)
        if known is not None and known[0] <= now < known[1]:
            return known[2]
        at = bisect_right(self._bounds, now)
        low = self._bounds[at - 1] if at > 0 else -inf
        high = self._bounds[at] if at < len(self._bounds) else inf
        offers = self._applicable_now(stage, placement, request, now)
        offers.flags.writeable = False
        if len(self._applicable) >= MAX_REMEMBERED:  # placements are the callers' strings
            self._applicable.clear()
        self._applicable[key] = (low, high, offers)
        return offers

    def _applicable_now(
        self, stage: str, placement: Placement, request: OfferRequest, now: float
    ) -> IntArray:
        """:meth:`applicable` computed from the offer table."""
        a = self.table
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
        return np.flatnonzero(ok)

    def allowed(
        self,
        offers: IntArray,
        weights: Mapping[str, float],
        exposure: Exposure | None,
        now: float,
    ) -> BoolArray:
        """Which of ``offers`` (catalog positions) pass eligibility and the contact policy.

        Exact for any :class:`Exposure`; for a :class:`Profile` only the offers its exposure
        history names are counted (every other count is 0)."""
        a = self.table
        is_profile = type(exposure) is Profile
        if is_profile and self.config.dismiss_limit <= 0:
            return np.zeros(len(offers), dtype=bool)
        # a profile's caps (the table's ~(cap <= 0), gathered), then the eligibility rules
        ok = a.uncapped[offers] if is_profile else np.ones(len(offers), dtype=bool)
        if a.any_ruled:
            for j in np.flatnonzero(a.ruled[offers]).tolist():
                if not self.specs[offers[j]].eligible(weights):
                    ok[j] = False
        if exposure is None:
            return ok
        if is_profile:
            assert isinstance(exposure, Profile)
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
            if ok[j] and self.capped(self.specs[offers[j]], exposure, now):
                ok[j] = False
        return ok

    def capped(self, spec: OfferSpec, exposure: Exposure, now: float) -> bool:
        """Shown ``max_impressions`` times in the cap window, or dismissed too often."""
        cfg = self.config
        if spec.max_impressions is not None and (
            exposure.impressions(spec.offer_id, now, cfg.cap_window_s) >= spec.max_impressions
        ):
            return True
        return exposure.dismissals(spec.offer_id, now, cfg.dismiss_window_s) >= cfg.dismiss_limit

    def blocked(self, profile: Profile | None, now: float) -> BoolArray:
        """Items that may not be offered: bought recently, or a substitute of such a purchase."""
        blocked = np.zeros(self.items.n_items, dtype=bool)
        if profile is None:
            return blocked
        for item_id, ts in profile.purchases.items():
            age = now - ts
            index = self.item_index.get(item_id)
            if index is not None and age < self.config.purchase_exclusion_s:
                blocked[index] = True
            if age < self.config.substitute_window_s:
                category = self.items.category_of(item_id)
                if category in self.items.category_items:
                    blocked[self.items.category_items[category]] = True
        return blocked

    def seen(self, profile: Profile | None) -> BoolArray:
        """Items the profile holds the user on (its item features, remembered touches and
        purchases): what a placement with ``exclude_seen`` does not offer."""
        seen = np.zeros(self.items.n_items, dtype=bool)
        if profile is None:
            return seen
        index = self.item_index
        held = (item_id for item_id, _ in item_weights(profile.weights))
        for item_id in chain(held, profile.touched, profile.purchases):
            at = index.get(item_id)
            if at is not None:
                seen[at] = True
        return seen
