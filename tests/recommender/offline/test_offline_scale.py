"""Training's cost at scale: memory that must not grow with contexts x catalog, the epoch
budget, and histories of odd shapes (BENCHMARKS.md, "Offline at scale")."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

import recommender.offline.hybrid as hybrid_module
from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.replay import Profiler
from recommender.core.scoring import relative_item_weights
from recommender.offline.evaluation import evaluate, split_events, user_sample
from recommender.offline.hybrid import train_served
from recommender.offline.propensity import fit_calibration
from recommender.offline.training import (
    TARGET_TYPES,
    ContextRows,
    TrainConfig,
    _calibrate,
    _sample_hit_rate,
    curve_sample_size,
    train,
)

T0 = 1_760_000_000.0


def peak_bytes(run: Callable[[], object]) -> int:
    """The most memory ``run`` held at once beyond what existed before (numpy's arrays too)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def calibration_inputs(n_items: int, n_contexts: int, dim: int = 8, seed: int = 3) -> dict:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    features = [f"item:i{j}" for j in range(50)] + [f"cat:c{j}" for j in range(10)]
    rows = []
    positives = []
    for _ in range(n_contexts):
        names = rng.choice(len(features), size=6, replace=False)
        weights = rng.random(6)
        rows.append(
            {features[k]: float(w / weights.sum()) for k, w in zip(names, weights, strict=True)}
        )
        positives.append([f"i{int(j)}" for j in rng.integers(0, 80, size=2)])
    return {
        "rows": rows,
        "positives": positives,
        "feature_index": {name: k for k, name in enumerate(features)},
        "item_index": {f"i{j}": j for j in range(n_items)},
        "feature_embeddings": rng.normal(size=(len(features), dim)).astype(np.float32),
        "feature_biases": rng.normal(size=len(features)).astype(np.float32),
        "item_vectors": rng.normal(size=(n_items, dim)).astype(np.float32),
        "item_biases": rng.normal(size=n_items).astype(np.float32),
        "seed": 5,
    }


def full_vector_calibration(a: dict) -> object:  # type: ignore[type-arg]
    """The calibration as it was fitted before: every item scored for every context."""
    raws, recents, pos = [], [], []
    for row, items in zip(a["rows"], a["positives"], strict=True):
        known = [(a["feature_index"][n], w) for n, w in row.items() if w > 0]
        idx = np.array([i for i, _ in known])
        vals = np.array([w for _, w in known])
        user = (vals / vals.sum()) @ a["feature_embeddings"][idx]
        raw = (a["item_vectors"] @ user + a["item_biases"]).astype(np.float64)
        raws.append(raw - raw.mean())
        recents.append(relative_item_weights(row, a["item_index"], len(raw)))
        pos.append([a["item_index"][i] for i in items])
    return fit_calibration(raws, recents, pos, seed=a["seed"])


def test_calibration_scores_only_the_sampled_items_with_the_same_fit() -> None:
    inputs = calibration_inputs(n_items=300, n_contexts=120)
    got = _calibrate(**inputs)
    want = full_vector_calibration(inputs)
    assert got is not None and want is not None
    assert got.n == want.n  # type: ignore[attr-defined]
    for name in ("a", "b", "c"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-9, abs=1e-12)


def test_calibration_memory_does_not_grow_with_the_catalog() -> None:
    # 300,000 items: a dense score vector per context is 2.4 MB, the float64 copy of the item
    # vectors a full product makes 19 MB; the sampled items need a few kB
    inputs = calibration_inputs(n_items=300_000, n_contexts=40)
    assert peak_bytes(lambda: _calibrate(**inputs)) < 2_000_000


def test_the_training_curve_ranks_in_blocks_with_the_same_hit_rate() -> None:
    rng = np.random.default_rng(0)
    n_users, n_features, n_items, dim = 600, 40, 50_000, 8
    user_x = sp.random(n_users, n_features, density=0.2, format="csr", dtype=np.float32, rng=rng)
    item_x = sp.identity(n_items, format="csr", dtype=np.float32)
    model = SimpleNamespace(
        user_embeddings=rng.normal(size=(n_features, dim)).astype(np.float32),
        item_embeddings=rng.normal(size=(n_items, dim)).astype(np.float32),
        item_biases=rng.normal(size=n_items).astype(np.float32),
    )
    # targets that are often in the top 10: the contexts' own best items
    users = np.asarray(user_x @ model.user_embeddings)
    dense = users @ model.item_embeddings.T + model.item_biases
    targets = np.where(rng.random(n_users) < 0.5, dense.argmax(axis=1), rng.integers(0, n_items))
    better = (dense > dense[np.arange(n_users), targets][:, None]).sum(axis=1)
    want = round(float((better < 10).mean()), 4)
    del dense, better
    assert 0.3 < want < 0.7
    got: list[float] = []
    # the whole sample scored at once holds 600 x 50,000 scores (120 MB in float32)
    peak = peak_bytes(lambda: got.append(_sample_hit_rate(model, user_x, item_x, targets)))
    assert got == [want]
    assert peak < 20_000_000


def test_epoch_budget_trains_fewer_epochs_on_a_long_history() -> None:
    config = TrainConfig(epochs=30, epoch_budget=3_000)
    assert config.epochs_for(50) == 30  # 1,500 visits: within the budget
    assert config.epochs_for(300) == 10
    assert config.epochs_for(10_000) == 1  # at least one epoch
    assert TrainConfig(epochs=30, epoch_budget=0).epochs_for(10**9) == 30  # 0: no limit
    catalog, events = odd_shop()
    model = train(events, catalog, Profiler(catalog), TrainConfig(epochs=8, epoch_budget=1))
    assert model.info["epochs"] == 1
    assert len(model.info["curve"]) == 1
    model = train(events, catalog, Profiler(catalog), TrainConfig(epochs=8, no_components=8))
    assert model.info["epochs"] == 8


def odd_shop(seed: int = 4) -> tuple[Catalog, list[Event]]:
    """A history with the shapes real logs have: one-event visitors, one shopper with a very
    long history, a huge category beside one-item and empty ones, items the catalog lacks,
    catalog items nobody touches, duplicated events and events written out of time order."""
    rng = random.Random(seed)
    items: dict[str, Item] = {}
    for j in range(120):
        category = "big" if j < 80 else (f"tiny{j}" if j < 100 else None)
        items[f"i{j}"] = Item(f"i{j}", title=None, category=category)
    catalog = Catalog(items)
    events: list[Event] = []
    kinds = ["page_view"] * 8 + ["add_to_cart", "purchase"]
    for u in range(60):
        length = 1 if u % 3 == 0 else (400 if u == 1 else rng.randint(2, 12))
        ts = T0 + rng.random() * 86_400 * 5
        for _ in range(length):
            ts += rng.expovariate(1 / 120)
            item = f"i{rng.randrange(100)}" if rng.random() < 0.9 else f"ghost{rng.randrange(9)}"
            event = Event(user_id=f"u{u}", type=rng.choice(kinds), item_id=item).with_ts(ts)
            events.append(event)
            if rng.random() < 0.05:
                events.append(event)  # delivered twice
    moved = rng.sample(range(len(events)), len(events) // 20)
    for a, b in zip(moved, reversed(moved), strict=True):
        events[a], events[b] = events[b], events[a]
    return catalog, events


def test_train_and_evaluate_survive_odd_shapes() -> None:
    catalog, events = odd_shop()
    profiler = Profiler(catalog)
    config = TrainConfig(epochs=3, no_components=8)
    train_events, test_events = split_events(events, split_ratio=0.8)
    model = train_served(train_events, catalog, profiler, config)
    assert model.hybrid is not None
    result = evaluate(model, catalog, profiler, train_events, test_events, ks=(10,))
    assert result.n_predictions > 0
    assert 0.0 <= result.method_metrics("live")["hr@10"] <= 1.0


def test_context_rows_give_back_each_row_and_the_matrix_of_the_kept_ones() -> None:
    rng = random.Random(2)
    names = [f"item:i{j}" for j in range(30)] + ["cat:a", "q:tv", "brand:x"]
    given = [
        {name: rng.random() for name in rng.sample(names, rng.randint(1, 8))} for _ in range(200)
    ]
    rows = ContextRows()
    for row in given:
        rows.append(row)
    assert len(rows) == 200
    assert [rows[j] for j in range(200)] == given
    assert list(rows) == given
    assert [list(rows[j]) for j in range(200)] == [list(row) for row in given]  # order kept
    keep = np.array([rng.random() < 0.7 for _ in given])
    matrix, features = rows.matrix(keep)
    kept = [row for row, k in zip(given, keep, strict=True) if k]
    # what training built before, a dict per row: names sorted, each row in its own order
    assert features == sorted({name for row in kept for name in row})
    index = {name: j for j, name in enumerate(features)}
    assert matrix.shape == (len(kept), len(features))
    assert matrix.dtype == np.float32
    for r, row in enumerate(kept):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        assert matrix.indices[lo:hi].tolist() == [index[name] for name in row]
        assert matrix.data[lo:hi].tolist() == np.array(list(row.values()), np.float32).tolist()


def test_a_sample_of_users_is_evaluated_exactly_as_in_the_full_walk() -> None:
    catalog, events = odd_shop()
    profiler = Profiler(catalog)
    train_events, test_events = split_events(events, split_ratio=0.7)
    model = train(train_events, catalog, profiler, TrainConfig(epochs=2, no_components=8))
    wanted = TARGET_TYPES["any"]
    targets = sum(e.type in wanted and e.item_id is not None for e in test_events)
    assert user_sample(test_events, wanted, targets) is None  # within the cap: everyone
    assert user_sample(test_events, wanted, 0) is None  # 0: no cap
    cap = targets // 3
    sample = user_sample(test_events, wanted, cap)
    assert sample is not None and sample == user_sample(list(reversed(test_events)), wanted, cap)
    full = evaluate(model, catalog, profiler, train_events, test_events, ks=(10,))
    part = evaluate(model, catalog, profiler, train_events, test_events, ks=(10,), users=sample)
    assert 0 < part.n_predictions <= cap
    rows = [j for j, u in enumerate(full.users.tolist()) if full.user_ids[u] in sample]
    assert part.ranks.tolist() == full.ranks[rows].tolist()
    assert part.discover_ranks is not None and full.discover_ranks is not None
    assert part.discover_ranks.tolist() == full.discover_ranks[rows].tolist()
    assert set(part.user_ids) == sample


def test_the_curve_ranks_fewer_contexts_against_a_large_catalog() -> None:
    assert curve_sample_size(50_000, 7_620) == 2_000  # the shared samples: unchanged
    assert curve_sample_size(500, 7_620) == 500
    assert curve_sample_size(1_000_000, 200_000) == 200  # 40M scores per epoch, not 400M
    assert curve_sample_size(1_000_000, 10**7) == 100


def blas_threads() -> int:
    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_the_walks_score_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    if blas_threads() < 2:
        pytest.skip("BLAS runs one thread here anyway")
    catalog, events = odd_shop()
    profiler = Profiler(catalog)
    train_events, test_events = split_events(events, split_ratio=0.8)
    during: list[int] = []
    real_moment = hybrid_module.moment

    def spying_moment(*args: Any, **kwargs: Any) -> Any:
        if len(during) < 5:
            during.append(blas_threads())
        return real_moment(*args, **kwargs)

    monkeypatch.setattr(hybrid_module, "moment", spying_moment)
    model = train_served(train_events, catalog, profiler, TrainConfig(epochs=2, no_components=8))
    assert during == [1] * 5  # the ranker's training moments

    def spy(_events: object) -> list[str]:
        if len(during) < 10:
            during.append(blas_threads())
        return []

    evaluate(model, catalog, profiler, train_events, test_events, extra_methods={"spy": spy})
    assert during == [1] * 10  # the evaluation's walk
    assert blas_threads() >= 2  # and the pool is given back


def test_the_default_budget_leaves_the_shared_samples_their_epochs() -> None:
    # the largest sample (Taobao) has 29,293 positive pairs; `zmot tune` tries up to 50 epochs
    assert TrainConfig(epochs=50).epochs_for(29_293) == 50
    assert TrainConfig().epochs_for(29_293) == 30
    assert TrainConfig().epochs_for(267_765) == 30  # 100k events keep their 30 epochs
    assert TrainConfig().epochs_for(2_400_000) == 4  # a million events
