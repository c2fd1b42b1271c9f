"""``zmot_native`` (the hybrid candidate pass in Rust, ``recommender/native``) gives what the
numpy pass gives: the same candidates, model positions and extra items exactly, the same
signals (to 1e-12; in fact bit for bit, which ``test_hybrid_equivalence.py`` checks against
the frozen reference on both paths), the same ranking from :meth:`HybridScorer.score` and
the same co-visitation reasons (:meth:`HybridScorer.lifted_by_many`), on
random tables and profiles drawn by hypothesis to hit the edges: empty profiles, items known
only to the model, only to the tables or to neither, items listed as their own neighbour or
twice, ties in votes and weights, budgets of 0 and budgets larger than the catalogue.

The module must be built (``make install``): the first test fails when it does not import,
unless ``ZMOT_NATIVE=0`` says to serve the numpy pass."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core import hybrid
from recommender.core.features import item_feature
from recommender.core.hybrid import FEATURES, HybridParams, HybridScorer, HybridTables
from recommender.core.model import Model
from recommender.core.profile import Profile
from tests.recommender.core.test_hybrid_equivalence import random_world

NOW = 1_770_000_000.0
DAY = 86_400.0
DISABLED = os.environ.get(hybrid.NATIVE_ENV, "1").strip() == "0"
needs_native = pytest.mark.skipif(
    hybrid.NATIVE is None,
    reason="zmot_native not built (test_the_module_is_built fails then), or ZMOT_NATIVE=0",
)


def test_the_module_is_built() -> None:
    """``make install`` built and installed ``zmot_native`` and the hybrid ranker serves with
    it; only ``ZMOT_NATIVE=0`` may turn it off."""
    if DISABLED:
        pytest.skip("ZMOT_NATIVE=0: the numpy pass serves")
    import zmot_native

    assert tuple(zmot_native.FEATURES) == FEATURES
    assert hybrid.NATIVE is zmot_native


def test_zmot_native_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hybrid.NATIVE_ENV, "0")
    assert hybrid.load_native() is None


def test_a_missing_module_warns_and_numpy_serves(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(hybrid.NATIVE_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "zmot_native", None)  # import raises ImportError
    with caplog.at_level(logging.WARNING, logger=hybrid.__name__):
        assert hybrid.load_native() is None
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "zmot_native is not installed"
    ]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Model, HybridTables]:
    """A model of 1-40 items and tables over some of them and items it does not know, with
    weights from a few values so that votes tie."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_model = draw(st.integers(1, 40))
    items = [f"m{i:02d}" for i in range(n_model)]
    categories = [f"c{i}" for i in range(draw(st.integers(0, 5)))]
    features = [item_feature(i) for i in items] + [f"cat:{c}" for c in categories] + ["q:a"]
    dim = 3
    model = Model(
        version=f"w-{seed}",
        feature_names=features,
        item_ids=items,
        feature_embeddings=np.round(rng.normal(size=(len(features), dim)), 1).astype(np.float32),
        feature_biases=np.round(rng.normal(size=len(features)), 1).astype(np.float32),
        item_vectors=np.round(rng.normal(size=(n_model, dim)), 1).astype(np.float32),
        item_biases=np.round(rng.normal(size=n_model), 1).astype(np.float32),
        popular=items[:5],
    )
    shared = draw(st.integers(0, n_model))
    table_items = [items[j] for j in rng.permutation(n_model)[:shared]]
    table_items += [f"t{i:02d}" for i in range(draw(st.integers(0 if shared else 1, 12)))]
    table_items = [table_items[j] for j in rng.permutation(len(table_items))]
    n = len(table_items)
    most = draw(st.integers(0, 10))
    ptr, idx, w = [0], [], []
    for j in range(n):
        row = rng.choice(n, size=int(rng.integers(0, min(most, n) + 1)), replace=False)
        if rng.random() < 0.1:
            row = np.append(row[row != j], j)  # an item listed as its own neighbour
        if len(row) and rng.random() < 0.1:
            row = np.append(row, row[0])  # a neighbour listed twice (its votes add up)
        idx.extend(row.tolist())
        w.extend((rng.integers(1, 5, size=len(row)) / 4.0).tolist())
        ptr.append(len(idx))
    budget = HybridParams(
        own_items=draw(st.integers(0, 15)),
        covisit_items=draw(st.integers(0, 15)),
        recent_voters=draw(st.integers(0, 12)),
        recent_covisit_items=draw(st.integers(0, 15)),
        model_items=draw(st.integers(0, 50)),
        popular_items=draw(st.integers(0, 10)),
        max_candidates=draw(st.integers(0, 80)),
    )
    tables = HybridTables(
        items=table_items,
        neighbour_ptr=np.array(ptr, dtype=np.int64),
        neighbour_idx=np.array(idx, dtype=np.int64),
        neighbour_w=np.array(w, dtype=np.float32),
        popularity=np.log1p(rng.integers(0, 4, size=n)).astype(np.float32),
        trend=np.log1p(rng.integers(0, 3, size=n) * (rng.random(n) < 0.5)).astype(np.float32),
        categories=categories,
        item_category=rng.integers(-1, len(categories), size=n).astype(np.int64)
        if categories
        else np.full(n, -1, dtype=np.int64),
        params=budget,
        half_life_s=draw(st.sampled_from([3600.0, DAY])),
        weights=np.round(rng.normal(size=len(FEATURES)), 2),
        spread=np.abs(rng.normal(size=len(FEATURES))) + 0.1,
        offset=float(np.round(rng.normal(), 2)),
    )
    model.hybrid = tables
    return model, tables


@st.composite
def profiles(draw: st.DrawFn, model: Model, tables: HybridTables) -> Profile:
    """Item, category and search weights (some items unknown to both, some tied), touches
    (also of items without a weight), purchases, with or without a landmark."""
    pool = sorted(set(model.item_ids + tables.items)) + ["x0", "x1"]
    names = st.sampled_from(pool)
    weight = st.sampled_from([0.5, 1.0]) | st.floats(0.01, 5.0)
    weights = {item_feature(i): w for i, w in draw(st.dictionaries(names, weight)).items()}
    if tables.categories:
        for c, w in draw(st.dictionaries(st.sampled_from(tables.categories), weight)).items():
            weights[f"cat:{c}"] = w
    if draw(st.booleans()):
        weights["q:a"] = draw(weight)
    age = st.sampled_from([0.0, 60.0, 3600.0]) | st.floats(0.0, 3 * DAY)
    touched = {i: NOW - a for i, a in draw(st.dictionaries(names, age, max_size=25)).items()}
    purchases = {i: NOW - a for i, a in draw(st.dictionaries(names, age, max_size=4)).items()}
    landmark = draw(st.none() | st.floats(NOW - DAY, NOW))
    return Profile(
        weights=weights,
        landmark=landmark,
        last_ts=NOW,
        n_events=len(weights),
        purchases=purchases,
        touched=touched,
    )


def both_passes(
    model: Model, tables: HybridTables, profile: Profile, z: Any, weights: Any
) -> tuple[Any, Any]:
    args = (tables, model, profile, NOW, z, weights)
    native = hybrid._candidate_rows_native(*args)
    # the profile's dicts read in Rust (run_profile) and in Python (run): the same, bit for bit
    assert_same_pass(native, hybrid._candidate_rows_native_read(*args), exact=True)
    return native, hybrid._candidate_rows_numpy(*args)


def assert_same_pass(got: Any, want: Any, exact: bool = False) -> None:
    picked, extra, at, rows, voters = got
    assert picked.dtype == want[0].dtype and at.dtype == want[2].dtype
    assert picked.tolist() == want[0].tolist()
    assert extra == want[1]
    assert at.tolist() == want[2].tolist()
    assert rows.shape == want[3].shape
    if exact:
        assert rows.tobytes() == want[3].tobytes()
    else:
        np.testing.assert_allclose(rows, want[3], rtol=1e-12, atol=1e-12)
    # repr: exact floats (NaN equal to NaN, -0.0 not equal to 0.0)
    assert repr((list(voters[0]), list(voters[1]))) == repr((list(want[4][0]), list(want[4][1])))


@needs_native
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_native_pass_gives_the_numpy_pass(data: st.DataObject) -> None:
    model, tables = data.draw(worlds())
    for _ in range(3):  # a few profiles on one world: the pass's scratch must come back clean
        profile = data.draw(profiles(model, tables))
        weights = profile.normalised()
        scorer = HybridScorer(
            model, tables, purchase_exclusion_s=data.draw(st.sampled_from([0, DAY]))
        )
        raw = model.scores(weights) if weights else None  # None: no feature the model knows
        z = scorer.plain.blend(raw, weights, profile, NOW) if raw is not None else None
        if data.draw(st.booleans()):
            z = None  # the pass computes the scores itself (or, with no model, has none)
        use_model = model if data.draw(st.integers(0, 9)) else None
        assert_same_pass(*both_passes(use_model, tables, profile, z, weights or None))
        if raw is not None:
            native = scorer.score(raw, weights, profile, NOW)
            saved = hybrid.NATIVE
            try:
                hybrid.NATIVE = None
                numpy_ = scorer.score(raw, weights, profile, NOW)
            finally:
                hybrid.NATIVE = saved
            order = np.argsort(-native[0], kind="stable").tolist()
            assert order == np.argsort(-numpy_[0], kind="stable").tolist()
            np.testing.assert_allclose(native[1], numpy_[1], rtol=1e-12, atol=1e-12)
        # the co-visitation reasons: the native search and numpy's searchsorted name the same
        asked = [*model.item_ids, *tables.items, "x0"]
        lifted = HybridScorer(model, tables, purchase_exclusion_s=0.0).lifted_by_many(
            weights, asked
        )
        saved = hybrid.NATIVE
        try:
            hybrid.NATIVE = None
            numpy_lifted = HybridScorer(model, tables, purchase_exclusion_s=0.0).lifted_by_many(
                weights, asked
            )
        finally:
            hybrid.NATIVE = saved
        assert lifted == numpy_lifted
        if raw is not None:  # with the voters the native pass just read (its score)
            scorer.score(raw, weights, profile, NOW)
            assert scorer.lifted_by_many(weights, asked) == numpy_lifted


@needs_native
def test_a_bigger_budget_than_the_catalogue_and_a_changed_budget() -> None:
    """Params read on every call (a budget change takes effect without a new pass)."""
    model, tables = random_world(5)
    profile = Profile(
        weights={item_feature(i): 1.0 / (1 + k) for k, i in enumerate(tables.items[:6])},
        landmark=NOW,
        last_ts=NOW,
        n_events=6,
        touched={i: NOW - 60.0 * k for k, i in enumerate(tables.items[3:12])},
        purchases={tables.items[4]: NOW - 3600.0},
    )
    weights = profile.normalised()
    for params in (
        tables.params,
        replace(tables.params, max_candidates=10_000, model_items=1000, own_items=1000),
        replace(tables.params, max_candidates=0),
        replace(tables.params, covisit_items=0, recent_covisit_items=0, own_items=0),
    ):
        tables.params = params
        assert_same_pass(*both_passes(model, tables, profile, None, weights))


@needs_native
@pytest.mark.parametrize("odd", ["nan touch", "nan weight", "int weights", "surrogate name"])
def test_dicts_the_native_reading_does_not_take_are_read_in_python(odd: str) -> None:
    """``run_profile`` hands back None for what it does not read (a NaN, a weight that is not
    a float, a name that is not UTF-8) and the pass reads the dicts in Python instead."""
    model, tables = random_world(5)
    items = tables.items
    weights: dict[str, Any] = {item_feature(i): 1.0 / (1 + k) for k, i in enumerate(items[:6])}
    touched = {i: NOW - 60.0 * k for k, i in enumerate(items[3:12])}
    if odd == "nan touch":
        touched[items[2]] = float("nan")
    elif odd == "nan weight":
        weights[item_feature(items[7])] = float("nan")
    elif odd == "int weights":
        weights = {item_feature(i): 1 + k for k, i in enumerate(items[:6])}
    else:
        weights[item_feature("\ud800")] = 0.5
    profile = Profile(
        weights=weights, landmark=NOW, last_ts=NOW, n_events=6, touched=touched, purchases={}
    )
    u = hybrid.universe(tables, model)
    native = hybrid._native_of(tables, model)
    p = tables.params
    got = native.run_profile(
        weights, weights, touched, {}, 1.0, NOW, None, None, p.recent_voters, p.own_items,
        p.covisit_items, p.recent_covisit_items, p.max_candidates,
    )  # fmt: skip
    assert got is None
    args = (tables, model, profile, NOW, None, weights)
    assert_same_pass(
        hybrid._candidate_rows_native(*args), hybrid._candidate_rows_native_read(*args), exact=True
    )
    assert u.native is native


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    z=st.lists(st.sampled_from([-1.0, -0.0, 0.0, 0.5, 2.0]) | st.floats(-3, 3), max_size=60),
    k=st.integers(0, 70),
)
def test_top_items_is_numpys_choice_or_none(z: list[float], k: int) -> None:
    """``zmot_native.top_items`` gives ``_best``'s items exactly, or None (a tie across the
    cut, where numpy's introselect chooses); ``_native_best`` is ``_best`` either way."""
    import zmot_native

    scores = np.array(z, dtype=np.float64)
    want = hybrid._best(scores, k)
    got = zmot_native.top_items(scores, k)
    n = min(k, len(z))
    if n:
        kth = np.sort(scores)[::-1][n - 1]
        crossing = int(np.count_nonzero(scores >= kth)) > n
        assert (got is None) == crossing
    if got is not None:
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert hybrid._native_best(scores, k).tolist() == want.tolist()
    if len(z):
        scores[len(z) // 2] = np.nan
        assert zmot_native.top_items(scores, k) is None


@needs_native
@settings(max_examples=200, deadline=None)
@given(
    z=st.lists(st.sampled_from([-1.0, -0.0, 0.0, 2.0]) | st.floats(-4, 4), min_size=1, max_size=30),
    logits=st.lists(
        st.sampled_from([-0.0, 0.0, 60.0, -60.0, 50.0, float("nan")]) | st.floats(-80, 80),
        max_size=30,
    ),
    data=st.data(),
)
def test_priced_natively_is_numpys_bit_for_bit(
    z: list[float], logits: list[float], data: st.DataObject
) -> None:
    """``HybridScorer.priced`` with ``zmot_native.priced`` (around numpy's ``exp`` and
    reductions) and without it: the same scores and propensities, bit for bit (NaN, -0.0 and
    logits past the clip included), candidates outside the model (-1) among them."""
    model, tables = random_world(3)
    n = len(z)
    positions = data.draw(st.permutations(list(range(n))))
    at = [p if data.draw(st.booleans()) else -1 for p in positions[: len(logits)]]
    at += [-1] * (len(logits) - len(at))
    known = [i for i, a in enumerate(at) if a >= 0]
    rows = np.zeros((len(at), len(FEATURES)))
    scorer = HybridScorer(model, tables, purchase_exclusion_s=0.0)
    # logits through the ranker: coefficient 1 on one signal, 0 elsewhere, no offset
    tables.weights = np.zeros(len(FEATURES))
    tables.weights[0] = 1.0
    tables.spread = np.ones(len(FEATURES))
    tables.offset = 0.0
    rows[:, 0] = logits
    profile = Profile(weights={}, landmark=NOW, last_ts=NOW, n_events=0)
    args = (np.array(z), np.array(at, dtype=np.intp), rows, profile, NOW)
    native = scorer.priced(*args)
    saved = hybrid.NATIVE
    try:
        hybrid.NATIVE = None
        numpy_ = scorer.priced(*args)
    finally:
        hybrid.NATIVE = saved
    assert native[0].tobytes() == numpy_[0].tobytes()
    assert native[1].tobytes() == numpy_[1].tobytes()
    assert len(known) <= n
