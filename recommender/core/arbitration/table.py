"""The request-independent facts of offers and items as numpy arrays, built once per arbiter.

Every rule and the priority are evaluated for all offers at once on these arrays; a category
offer's best item is found for all categories in one masked ``argmax`` over
:attr:`ItemTable.category_pad`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from recommender.core.arbitration.types import BoolArray, FloatArray, IntArray
from recommender.core.catalog import Catalog
from recommender.core.model import Model
from recommender.core.offers import OfferSpec


class ItemTable:
    """Categories and popularity of the model's items (index = model item position)."""

    def __init__(self, model: Model, catalog: Catalog) -> None:
        self.catalog = catalog
        n = len(model.item_ids)
        self.n_items = n
        self.item_category: list[str | None] = []
        by_category: dict[str, list[int]] = {}
        for i, item_id in enumerate(model.item_ids):
            category = self.category_of(item_id)
            self.item_category.append(category)
            if category:
                by_category.setdefault(category, []).append(i)
        self.category_items = {c: np.array(v, dtype=np.intp) for c, v in by_category.items()}
        rank = {item: r for r, item in enumerate(model.popular)}
        self.popularity = np.array(
            [-float(rank.get(item_id, len(rank) + i)) for i, item_id in enumerate(model.item_ids)]
        )
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

    def category_of(self, item_id: str) -> str | None:
        """The catalog category of any item (also one the model does not know)."""
        item = self.catalog.get(item_id)
        return item.category if item else None

    def title_of(self, item_id: str) -> str:
        """The quoted title of an item for a reason, else its id."""
        item = self.catalog.get(item_id)
        return f'"{item.title}"' if item and item.title else item_id


class OfferTable:
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
        self.any_ruled = bool(self.ruled.any())
        self.uncapped = ~(self.cap <= 0)
        """Offers whose cap lets them be shown at all (``~(cap <= 0)``, NaN-proof as that)."""
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
        self.standing: dict[int, _Standing] = {}
        """:func:`resolve`'s request-independent part per applicable offer set."""
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


@dataclass(frozen=True)
class Shortlist:
    """Offers still in the running (catalog positions) and the model item each stands for."""

    offers: IntArray
    items: IntArray

    def keep(self, mask: BoolArray) -> Shortlist:
        return Shortlist(self.offers[mask], self.items[mask])

    def __len__(self) -> int:
        return len(self.offers)


class _Standing(NamedTuple):
    """What :func:`resolve` reads of a set of offers before the request's scores and blocks."""

    offers: IntArray
    item: IntArray  # each offer's own item (-1: none)
    own: BoolArray  # offers of their own item
    own_item: IntArray  # item[own]
    categorical: BoolArray | None  # None: no category offer (or no category) to resolve
    known: BoolArray  # categorical offers of a known category
    category: IntArray  # the offers' category (-1 as 0: masked out by known)


_MAX_STANDING = 64


def _standing(table: OfferTable, items: ItemTable, offers: IntArray) -> _Standing:
    """The request-independent part of :func:`resolve` for ``offers``, remembered for a
    read-only array (:meth:`~recommender.core.arbitration.rules.Rules.applicable`'s, the same
    object for every request until an offer starts or ends)."""
    held = table.standing.get(id(offers))
    if held is not None and held.offers is offers:
        return held
    item = table.item[offers]
    own = item >= 0
    categorical = table.is_category[offers]
    category = table.category[offers]
    standing = _Standing(
        offers,
        item,
        own,
        item[own],
        categorical if categorical.any() and len(items.categories) else None,
        categorical & (category >= 0),
        np.maximum(category, 0),
    )
    if not offers.flags.writeable:
        if len(table.standing) >= _MAX_STANDING:
            table.standing.clear()
        table.standing[id(offers)] = standing
    return standing


def resolve(
    table: OfferTable, items: ItemTable, offers: IntArray, scores: FloatArray, blocked: BoolArray
) -> Shortlist:
    """The offers that stand for an unblocked item: their own item, or the best unblocked item
    of their category (the first best in item order)."""
    s = _standing(table, items, offers)
    item = s.item
    found = s.own.copy()
    found[found] = ~blocked[s.own_item]
    if s.categorical is not None:
        padded = np.append(np.where(blocked, -np.inf, scores), -np.inf)
        scored = padded[items.category_pad]
        best = scored.argmax(axis=1)
        rows = np.arange(len(items.categories))
        best_item = items.category_pad[rows, best]
        has_best = scored[rows, best] > -np.inf
        item = np.where(s.known, best_item[s.category], item)
        found = np.where(s.categorical, s.known & has_best[s.category], found)
    return Shortlist(offers[found], item[found])
