"""The optimised hybrid serving path gives exactly what it gave before (the frozen
:mod:`tests.recommender.core.hybrid_reference`): the same candidates, signals, item scores,
propensities and co-visitation reasons, on random worlds built to hit the edge cases (ties in
weights and scores, items known only to the model or only to the tables or to neither,
purchases inside and outside the exclusion window, small candidate budgets) and on the demo
shop's trained model. Every test runs twice: with the candidate pass and the co-visitation
reasons in ``zmot_native`` (Rust; skipped when it is not built, which ``test_native.py``
fails on) and in numpy."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pytest

from recommender.core import hybrid
from recommender.core.features import item_feature
from recommender.core.hybrid import (
    FEATURES,
    HybridParams,
    HybridScorer,
    HybridTables,
    candidate_rows,
    moment,
)
from recommender.core.model import Model
from recommender.core.profile import Profile
from tests.recommender.core import hybrid_reference as ref

if TYPE_CHECKING:
    from tests.conftest import DemoShop

NOW = 1_770_000_000.0
DAY = 86_400.0


@pytest.fixture(autouse=True, params=["native", "numpy"])
def serving_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The native pass (``zmot_native``) or the numpy one."""
    if request.param == "native" and hybrid.NATIVE is None:
        pytest.skip("zmot_native not built, or ZMOT_NATIVE=0")
    if request.param == "numpy":
        monkeypatch.setattr(hybrid, "NATIVE", None)
    return str(request.param)


def random_world(seed: int) -> tuple[Model, HybridTables]:
    """A model of 60-150 items and tables over most of them plus items it does not know,
    with weights and scores quantised so that ties happen."""
    rng = np.random.default_rng(seed)
    n_model = int(rng.integers(60, 150))
    items = [f"m{i:03d}" for i in range(n_model)]
    categories = [f"c{i}" for i in range(int(rng.integers(1, 9)))]
    features = [item_feature(i) for i in items] + [f"cat:{c}" for c in categories]
    features += ["q:a", "q:b", "kind:page_view"]
    dim = 4
    model = Model(
        version=f"rand-{seed}",
        feature_names=features,
        item_ids=items,
        feature_embeddings=np.round(rng.normal(size=(len(features), dim)), 1).astype(np.float32),
        feature_biases=np.round(rng.normal(size=len(features)), 1).astype(np.float32),
        item_vectors=np.round(rng.normal(size=(n_model, dim)), 1).astype(np.float32),
        item_biases=np.round(rng.normal(size=n_model), 1).astype(np.float32),
        popular=items[:10],
    )
    known = [items[j] for j in rng.permutation(n_model)[: int(n_model * 0.8)]]
    table_items = known + [f"t{i:02d}" for i in range(int(rng.integers(0, 30)))]
    table_items = [table_items[j] for j in rng.permutation(len(table_items))]
    n = len(table_items)
    ptr, idx, w = [0], [], []
    for j in range(n):
        k = int(rng.integers(0, min(15, n)))
        row = rng.choice(n, size=k, replace=False)
        if rng.random() < 0.05:
            row = np.append(row[row != j], j)  # an item listed as its own neighbour
        if len(row) and rng.random() < 0.05:
            row = np.append(row, row[0])  # a neighbour listed twice (its votes add up)
        idx.extend(row.tolist())
        w.extend((rng.integers(1, 9, size=len(row)) / 8.0).tolist())
        ptr.append(len(idx))
    weights = np.round(rng.normal(size=len(FEATURES)), 2)
    spread = np.abs(rng.normal(size=len(FEATURES))) + 0.1
    spread[rng.random(len(FEATURES)) < 0.1] = 0.0
    budget = HybridParams(
        own_items=int(rng.integers(1, 40)),
        covisit_items=int(rng.integers(1, 30)),
        recent_voters=int(rng.integers(1, 12)),
        recent_covisit_items=int(rng.integers(1, 20)),
        model_items=int(rng.integers(0, 30)),
        popular_items=int(rng.integers(1, 20)),
        max_candidates=int(rng.integers(5, 120)),
    )
    tables = HybridTables(
        items=table_items,
        neighbour_ptr=np.array(ptr, dtype=np.int64),
        neighbour_idx=np.array(idx, dtype=np.int64),
        neighbour_w=np.array(w, dtype=np.float32),
        popularity=np.log1p(rng.integers(0, 5, size=n)).astype(np.float32),
        trend=np.log1p(rng.integers(0, 4, size=n) * (rng.random(n) < 0.5)).astype(np.float32),
        categories=categories,
        item_category=rng.integers(-1, len(categories), size=n).astype(np.int64),
        params=budget,
        half_life_s=float(rng.choice([3600.0, DAY, 3 * DAY])),
        weights=weights,
        spread=spread,
        offset=float(np.round(rng.normal(), 2)),
    )
    model.hybrid = tables
    return model, tables


def random_profile(rng: random.Random, model: Model, tables: HybridTables) -> Profile:
    """Item, category and search weights (some items unknown to model and tables, some
    weights tied), remembered touches (also of items without a weight) and purchases."""
    pool = model.item_ids + tables.items + [f"x{i}" for i in range(5)]
    own = rng.sample(pool, rng.randint(0, min(60, len(pool))))
    weights = {item_feature(i): rng.choice([0.5, 1.0, rng.expovariate(1.0)]) for i in own}
    for c in rng.sample(tables.categories, rng.randint(0, len(tables.categories))):
        weights[f"cat:{c}"] = rng.choice([0.25, rng.random()])
    if rng.random() < 0.5:
        weights["q:a"] = rng.random()
    touched_pool = own + rng.sample(pool, min(10, len(pool)))
    touched = {
        i: NOW - rng.choice([60.0, 3600.0, rng.uniform(0, 3 * DAY)])
        for i in rng.sample(touched_pool, rng.randint(0, len(touched_pool)))
    }
    purchases = {i: NOW - rng.uniform(0, 3 * DAY) for i in rng.sample(pool, rng.randint(0, 6))}
    landmark = None if rng.random() < 0.1 else NOW - rng.uniform(0, DAY)
    return Profile(
        weights=weights,
        landmark=landmark,
        last_ts=NOW,
        n_events=len(weights),
        purchases=purchases,
        touched=touched,
    )


def assert_same(model: Model, tables: HybridTables, profile: Profile, exclusion_s: float) -> None:
    new = HybridScorer(model, tables, purchase_exclusion_s=exclusion_s)
    old = ref.ReferenceScorer(model, tables, purchase_exclusion_s=exclusion_s)
    weights = profile.normalised()
    raw = model.scores(weights) if weights else None
    if raw is not None:
        scores, propensity = new.score(raw, weights, profile, NOW)
        want_scores, want_propensity = old.score(raw, weights, profile, NOW)
        assert np.array_equal(np.isinf(scores), np.isinf(want_scores))
        finite = np.isfinite(want_scores)
        np.testing.assert_allclose(scores[finite], want_scores[finite], rtol=0, atol=0)
        np.testing.assert_allclose(propensity, want_propensity, rtol=0, atol=0)
        order = np.argsort(-scores, kind="stable")
        assert order.tolist() == np.argsort(-want_scores, kind="stable").tolist()
        z = new.plain.blend(raw, weights, profile, NOW)
    else:
        z = None
    picked, extra, at, rows = candidate_rows(tables, model, profile, NOW, z, weights or None)
    want = ref.candidate_rows(tables, model, profile, NOW, z, weights or None)
    assert picked.tolist() == want[0].tolist()
    assert extra == want[1]
    assert at.tolist() == want[2].tolist()
    np.testing.assert_allclose(rows, want[3], rtol=0, atol=0)
    names, moment_rows = moment(tables, model, profile, NOW, z)
    assert len(names) == len(picked)
    np.testing.assert_allclose(moment_rows, want[3], rtol=0, atol=0)
    asked = [*model.item_ids, *tables.items, "x0", "nowhere"]
    want_sources = [old.lifted_by(weights, item) for item in asked]
    assert [new.lifted_by(weights, item) for item in asked] == want_sources
    assert new.lifted_by_many(weights, asked) == want_sources
    assert new.lifted_by_many(weights, asked[::-1]) == want_sources[::-1]
    picks = random.Random(len(asked)).choices(asked, k=5)  # an answer's few offers, repeats
    assert new.lifted_by_many(weights, picks) == [old.lifted_by(weights, i) for i in picks]


@pytest.mark.parametrize("seed", range(12))
def test_random_worlds_rank_and_explain_as_before(seed: int) -> None:
    model, tables = random_world(seed)
    rng = random.Random(seed)
    for _ in range(40):
        assert_same(model, tables, random_profile(rng, model, tables), rng.choice([0.0, DAY]))


def test_a_ranker_without_co_visitation_weight_names_no_source() -> None:
    model, tables = random_world(99)
    tables.weights[FEATURES.index("covisit")] = -1.0
    profile = random_profile(random.Random(1), model, tables)
    assert_same(model, tables, profile, DAY)


def test_the_demo_model_ranks_and_explains_as_before(demo_shop: DemoShop) -> None:
    model = Model.load(demo_shop.model_dir)
    assert model.hybrid is not None
    rng = random.Random(4)
    names = model.feature_names
    for _ in range(150):
        chosen = rng.sample(names, min(len(names), rng.choice([1, 8, 32, 64])))
        weights = {name: rng.expovariate(1.0) for name in chosen}
        items = [n[len("item:") :] for n in chosen if n.startswith("item:")]
        profile = Profile(
            weights=weights,
            landmark=NOW,
            last_ts=NOW,
            n_events=len(weights),
            touched={i: NOW - rng.uniform(0, DAY) for i in items[:20]},
            purchases={i: NOW - rng.uniform(0, 3 * DAY) for i in items[:2]},
        )
        assert_same(model, model.hybrid, profile, DAY)
    # the same tables with a bigger budget than the catalogue
    wide = replace(model.hybrid.params, max_candidates=10_000, model_items=1000)
    model.hybrid.params = wide
    assert_same(model, model.hybrid, profile, 0.0)
