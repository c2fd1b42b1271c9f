"""The hybrid ranker as the arbiter's scorer: used only with servable tables, and a model
without tables decides exactly as before."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from recommender.core.arbitration import Arbiter, ArbitrationConfig, OfferRequest
from recommender.core.hybrid import HybridScorer, moment, serving_scorer
from recommender.core.model import Model
from recommender.core.placements import parse_placements
from recommender.core.scoring import Decision, ItemScorer, propensities
from tests.recommender.core.arbitration_support import (
    CATALOG,
    model,
    offers,
    one_per_item,
    profile,
)
from tests.recommender.core.test_hybrid_tables import tables

NOW = 1_760_000_000.0
PLACEMENTS = {"page": {"k": 2, "exploration": {"share": 0.5, "method": "softmax"}}}
PROFILES = [
    profile({"q:tv": 1.0, "kind:search": 0.2}, NOW - 60),
    profile({"q:boots": 0.7, "q:weak": 0.3, "item:boots-1": 0.4}, NOW - 3600),
    profile({"q:tv": 0.5, "item:tv-1": 1.0}, NOW - 600, purchases={"tv-1": NOW - 3600}),
    profile({"q:weak": 1.0}, NOW),
]
REQUESTS = [
    OfferRequest(k=3, debug=True),
    OfferRequest(placement="page", lang="de", context_item="tv-1", debug=True),
    OfferRequest(k=5, same_category=True, lang="it"),
]


ANY_TV = {"offer_id": "any-tv", "category": "electronics.tv", "value": 3}


def arbiter(the_model: Model, *, tv_offer: bool = True, **config: Any) -> Arbiter:
    rows = [*one_per_item(), *([ANY_TV] if tv_offer else [])]
    return Arbiter(
        the_model,
        CATALOG,
        offers(*rows),
        parse_placements(PLACEMENTS),
        ArbitrationConfig(recent_boost=0.5, relevance_floor=0.01, **config),
        random.Random(5),
    )


def decisions(decider: Arbiter) -> list[Decision]:
    return [replace(decider.decide(p, r, NOW), decision_id="") for p in PROFILES for r in REQUESTS]


def test_a_model_without_tables_decides_exactly_as_with_the_hybrid_off() -> None:
    plain = model()
    assert plain.hybrid is None
    auto = arbiter(plain)
    assert type(auto.scorer) is ItemScorer
    assert decisions(auto) == decisions(arbiter(plain, hybrid=False))


def test_tables_without_an_offset_are_not_served() -> None:
    stale = model()
    stale.hybrid = tables()  # fitted before the ranker's offset was kept
    assert type(serving_scorer(stale, purchase_exclusion_s=0.0)) is ItemScorer
    assert decisions(arbiter(stale)) == decisions(arbiter(model(), hybrid=False))


def servable() -> Model:
    with_tables = model()
    with_tables.hybrid = tables()
    with_tables.hybrid.offset = -1.0
    with_tables.hybrid.params = replace(with_tables.hybrid.params, model_items=1)
    return with_tables


def test_hybrid_off_ignores_servable_tables() -> None:
    assert type(serving_scorer(servable(), purchase_exclusion_s=0.0, hybrid=False)) is ItemScorer
    assert decisions(arbiter(servable(), hybrid=False)) == decisions(arbiter(model()))


def test_candidates_get_the_rankers_probability_and_the_rest_none() -> None:
    m = servable()
    scorer = serving_scorer(m, purchase_exclusion_s=86400.0)
    assert isinstance(scorer, HybridScorer)
    viewer = profile({"q:tv": 0.5, "item:tv-1": 1.0}, NOW, purchases={"tv-2": NOW - 60})
    weights = viewer.normalised()
    raw = m.scores(weights)
    assert raw is not None
    scores, p = scorer.score(raw, weights, viewer, NOW)
    z = ItemScorer(m, purchase_exclusion_s=0.0).blend(raw, weights, viewer, NOW)
    names, rows = moment(m.hybrid, m, viewer, NOW, z=z)  # type: ignore[arg-type]  # set above
    expected = m.hybrid.probability(rows)  # type: ignore[union-attr]
    for name, want in zip(names, expected, strict=True):
        assert p[m.item_index[name]] == pytest.approx(want)
    others = [j for j, item in enumerate(m.item_ids) if item not in names]
    assert others and not p[others].any()
    logit = m.hybrid.logits(rows)  # type: ignore[union-attr]
    assert scores[others].max() < logit.min()  # every candidate above every other item
    assert scores[m.item_index["tv-2"]] == -np.inf  # bought a minute ago
    # co-visitation lifted the mount: tv-1 is the profile item behind it
    assert scorer.lifted_by(weights, "mount-1") == "tv-1"
    assert scorer.lifted_by(weights, "boots-1") is None


def test_the_plain_scorer_prices_with_the_models_calibration() -> None:
    m = model()
    viewer = PROFILES[1]
    weights = viewer.normalised()
    raw = m.scores(weights)
    assert raw is not None
    scorer = ItemScorer(m, purchase_exclusion_s=0.0, recent_boost=0.5)
    scores, p = scorer.score(raw, weights, viewer, NOW)
    assert np.array_equal(scores, scorer.blend(raw, weights, viewer, NOW))
    assert np.array_equal(p, propensities(m, raw, weights))
    assert scorer.lifted_by(weights, "tv-1") is None


def test_an_offer_lifted_by_co_visitation_says_which_item_people_also_viewed() -> None:
    viewer = profile({"q:tv": 0.2, "item:tv-1": 1.0}, NOW)
    for lang, text in (
        ("en", 'people who viewed "55in TV" also viewed this'),
        ("de", 'Wer "55in TV" angesehen hat, hat sich auch diesen Artikel angesehen'),
        ("it", 'chi ha guardato "55in TV" ha guardato anche questo'),
    ):
        request = OfferRequest(k=1, lang=lang)
        decision = arbiter(servable(), tv_offer=False).decide(viewer, request, NOW)
        assert [o.offer.item_id for o in decision.offers] == ["mount-1"]
        assert decision.offers[0].reasons[0] == text
