"""A hand-made model and shop with exact answers for the arbitration tests.

Two-dimensional embeddings: ``q:tv`` points at the TVs, ``q:boots`` at the boots; ``q:weak``
points nowhere (an unrelated, weak signal). ``twin-a`` and ``twin-b`` have identical vectors
(equal propensity) in different categories. Buying a TV is followed by accessories and support
in the learned complements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.core.arbitration import Arbiter, ArbitrationConfig
from recommender.core.catalog import Catalog, Item
from recommender.core.model import Model
from recommender.core.offers import OfferCatalog, parse_offer
from recommender.core.placements import Placements, parse_placements
from recommender.core.profile import Profile
from tests.support.profiles import profile_of

ITEMS = [
    Item("tv-1", title="55in TV", category="electronics.tv"),
    Item("tv-2", title="65in TV", category="electronics.tv"),
    Item("mount-1", title="Wall mount", category="electronics.tv_accessories"),
    Item("mount-2", title="Tilting mount", category="electronics.tv_accessories"),
    Item("setup-1", title="TV set-up", category="services.installation"),
    Item("boots-1", title="Hiking boots", category="outdoor.shoes"),
    Item("twin-a", title="Twin A", category="x.a"),
    Item("twin-b", title="Twin B", category="x.b"),
]
VECTORS = {
    "tv-1": [3.0, 0.0],
    "tv-2": [2.8, 0.0],
    "mount-1": [1.5, 0.0],
    "mount-2": [1.2, 0.0],
    "setup-1": [1.0, 0.0],
    "boots-1": [0.0, 3.0],
    "twin-a": [0.0, 2.0],
    "twin-b": [0.0, 2.0],
}
FEATURES = {"q:tv": [1.0, 0.0], "q:boots": [0.0, 1.0], "q:weak": [0.0, 0.0], "kind:search": [0, 0]}


def model() -> Model:
    items = [i.item_id for i in ITEMS]
    return Model(
        version="hand-1",
        feature_names=list(FEATURES),
        item_ids=items,
        feature_embeddings=np.array(list(FEATURES.values()), dtype=np.float32),
        feature_biases=np.zeros(len(FEATURES), dtype=np.float32),
        item_vectors=np.array([VECTORS[i] for i in items], dtype=np.float32),
        item_biases=np.zeros(len(items), dtype=np.float32),
        popular=["boots-1", "tv-1", "mount-1", "tv-2", "setup-1", "twin-a", "twin-b", "mount-2"],
        complements={
            "electronics.tv": {"electronics.tv_accessories": 0.8, "services.installation": 0.2}
        },
    )


CATALOG = Catalog({i.item_id: i for i in ITEMS})


def offers(*rows: Mapping[str, Any]) -> OfferCatalog:
    parsed = tuple(parse_offer(dict(r), f"test:{n}", CATALOG) for n, r in enumerate(rows))
    return OfferCatalog(parsed, "test")


def one_per_item(**extra: Any) -> list[dict[str, Any]]:
    return [{"offer_id": f"o-{i.item_id}", "item_id": i.item_id, **extra} for i in ITEMS]


def arbiter(
    rows: Iterable[Mapping[str, Any]],
    *,
    placements: Mapping[str, Any] | None = None,
    seed: int = 0,
    **config: Any,
) -> Arbiter:
    import random

    config.setdefault("relevance_floor", 0.0)  # tests of the floor set their own
    return Arbiter(
        model(),
        CATALOG,
        offers(*rows),
        parse_placements(placements) if placements else Placements(),
        ArbitrationConfig(**config),
        random.Random(seed),
    )


def profile(weights: dict[str, float], at: float | None = None, **extra: Any) -> Profile:
    """A profile of one event with these weights at ``at`` (default now)."""
    return profile_of(weights, at, n_events=1, **extra)


@dataclass
class Exposed(Profile):
    """A profile with fixed impression and dismissal counts (the feedback loop's methods)."""

    shown_n: dict[str, int] = field(default_factory=dict)
    dismissed_n: dict[str, int] = field(default_factory=dict)

    def impressions(self, offer_id: str, now: float, window_s: float) -> int:
        return self.shown_n.get(offer_id, 0)

    def dismissals(self, offer_id: str, now: float, window_s: float) -> int:
        return self.dismissed_n.get(offer_id, 0)
