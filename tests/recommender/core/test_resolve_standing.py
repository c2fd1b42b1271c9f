""":func:`~recommender.core.arbitration.table.resolve` with its request-independent part
remembered per applicable offer set gives the shortlist the former computation gives (kept
here as the reference), for item and category offers, any blocked items and scores (ties,
-inf), the same read-only offer set asked many times, and a writable one (never
remembered)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.arbitration.table import OfferTable, Shortlist, resolve
from tests.recommender.core.arbitration_support import ITEMS, arbiter

CATEGORIES = sorted({i.category for i in ITEMS if i.category})


def reference(table: OfferTable, items: Any, offers: Any, scores: Any, blocked: Any) -> Shortlist:
    """``resolve`` as it was before its standing part was remembered."""
    item = table.item[offers]
    found = item >= 0
    found[found] = ~blocked[item[found]]
    categorical = table.is_category[offers]
    if categorical.any() and len(items.categories):
        padded = np.append(np.where(blocked, -np.inf, scores), -np.inf)
        scored = padded[items.category_pad]
        best = scored.argmax(axis=1)
        rows = np.arange(len(items.categories))
        best_item = items.category_pad[rows, best]
        has_best = scored[rows, best] > -np.inf
        category = table.category[offers]
        known = categorical & (category >= 0)
        item = np.where(known, best_item[np.maximum(category, 0)], item)
        found = np.where(categorical, known & has_best[np.maximum(category, 0)], found)
    return Shortlist(offers[found], item[found])


rows = st.lists(
    st.one_of(
        st.sampled_from([i.item_id for i in ITEMS]).map(lambda i: {"item_id": i}),
        st.sampled_from(CATEGORIES).map(lambda c: {"category": c}),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(rows, st.data())
def test_resolve_is_the_reference(offer_rows: list[dict[str, str]], data: Any) -> None:
    a = arbiter([{"offer_id": f"o{n}", **r} for n, r in enumerate(offer_rows)])
    n_items = len(ITEMS)
    chosen = data.draw(st.lists(st.integers(0, len(offer_rows) - 1), unique=True))
    offers = np.array(sorted(chosen), dtype=np.intp)
    offers.flags.writeable = False  # as Rules.applicable hands it out
    for _ in range(3):  # the same offer set, other requests
        scores = np.array(
            data.draw(
                st.lists(
                    st.sampled_from([0.0, 1.0, 2.0, -np.inf, 0.5]),
                    min_size=n_items,
                    max_size=n_items,
                )
            )
        )
        blocked = np.array(data.draw(st.lists(st.booleans(), min_size=n_items, max_size=n_items)))
        want = reference(a.table, a.items, offers, scores, blocked)
        for asked in (offers, offers.copy()):  # remembered, and writable (computed afresh)
            got = resolve(a.table, a.items, asked, scores, blocked)
            assert got.offers.tolist() == want.offers.tolist()
            assert got.items.tolist() == want.items.tolist()
            assert got.items.dtype == want.items.dtype
    assert len(a.table.standing) <= 1
