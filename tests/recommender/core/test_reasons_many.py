"""``Explainer.reasons_many`` (what ``Arbiter.decide`` explains an answer's offers with) gives
each offer the reasons ``Explainer.reasons`` gives it, term for term: random models whose
features are of every kind (items with and without titles, categories, brands, purchases,
search tokens and prefixes, kinds), tied terms, three languages, search orders, complements,
context items, co-visitation sources and the recently-seen reason."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recommender.core.arbitration import OfferRequest, explain
from recommender.core.arbitration.explain import Explainer, search_order
from recommender.core.arbitration.table import ItemTable
from recommender.core.arbitration.types import Candidate
from recommender.core.catalog import Catalog, Item
from recommender.core.model import Model
from recommender.core.profile import Profile

ITEMS = [f"i{k}" for k in range(12)]
CATEGORIES = ["tv", "audio", "tv.mount", "shoes"]
FEATURES = (
    [f"item:{i}" for i in ITEMS[:8]]
    + ["item:gone"]  # an item the catalog does not know (its id is its label)
    + [f"cat:{c}" for c in CATEGORIES]
    + ["brand:lumina", "brand:acme"]
    + ["bought:item:i1", "bought:item:i5", "bought:cat:tv", "bought:cat:shoes"]
    + ["q:tv", "q:cheap", "q:repair", "q:boots", "qp:chea", "qp:repa"]
    + ["kind:page_view", "kind:search", "hour:20"]
)


def world(seed: int) -> tuple[Model, Catalog]:
    rng = np.random.default_rng(seed)
    dim = 3
    model = Model(
        version=f"r-{seed}",
        feature_names=FEATURES,
        item_ids=ITEMS,
        # rounded: many terms tie, and many are exactly 0
        feature_embeddings=np.round(rng.normal(size=(len(FEATURES), dim)), 0).astype(np.float32),
        feature_biases=np.zeros(len(FEATURES), dtype=np.float32),
        item_vectors=np.round(rng.normal(size=(len(ITEMS), dim)), 0).astype(np.float32),
        item_biases=np.zeros(len(ITEMS), dtype=np.float32),
        popular=ITEMS[:3],
    )
    catalog = Catalog(
        {
            i: Item(i, title=f"Title {i}" if k % 3 else None, category=CATEGORIES[k % 4])
            for k, i in enumerate(ITEMS)
        }
    )
    return model, catalog


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@pytest.mark.parametrize("seed", range(6))
def test_reasons_many_gives_each_offer_its_reasons(
    seed: int, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both walks of the terms: ``zmot_native.pick_reasons`` (when built) and Python's."""
    if native and explain._pick_reasons() is None:
        pytest.skip("zmot_native not built (test_native.py fails then), or ZMOT_NATIVE=0")
    if not native:
        monkeypatch.setattr(explain, "_pick_reasons", lambda: None)
    model, catalog = world(seed)
    rng = random.Random(seed)
    explainers = [Explainer(model, ItemTable(model, catalog), boost) for boost in (0.0, 0.5)]
    for _ in range(150):
        names = rng.sample(FEATURES, rng.randint(1, len(FEATURES)))
        weights = {n: rng.choice([1.0, 0.5, rng.random(), 0.0]) for n in names}
        profile = Profile(weights=weights, landmark=0.0, last_ts=0.0, n_events=len(weights))
        row = model.user_row(weights)
        tokens = rng.choice([search_order(profile), {}, {"cheap": 0, "tv": 3}])
        origin = {c: rng.choice(CATEGORIES) for c in rng.sample(CATEGORIES, rng.randint(0, 3))}
        request = OfferRequest(
            3,
            None,
            None,
            rng.choice([None, None, *ITEMS]),
            rng.choice(["en", "de", "it", "fr"]),
            False,
            False,
        )
        chosen = rng.sample(range(len(ITEMS)), rng.randint(0, 4))
        cands = [
            Candidate(None, j, ITEMS[j], CATEGORIES[j % 4], 0.5, 1.0, 1.0)  # type: ignore[arg-type]
            for j in chosen
        ]
        sources = [rng.choice([None, "gone", *ITEMS]) for _ in cands]
        for ex in explainers:
            many = ex.reasons_many(cands, weights, tokens, origin, request, row, sources)
            one = [
                ex.reasons(c, weights, tokens, origin, request, row, s)
                for c, s in zip(cands, sources, strict=True)
            ]
            assert many == one
