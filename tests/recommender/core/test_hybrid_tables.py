"""The hybrid ranker's core: votes and candidates from a profile, the tables in the artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.core.errors import ModelError
from recommender.core.events import Event
from recommender.core.hybrid import (
    BASE,
    FEATURES,
    SHAPES,
    HybridParams,
    HybridTables,
    covisit_votes,
    rank,
    shapes,
)
from recommender.core.model import Model
from recommender.core.replay import Profiler
from tests.recommender.core.arbitration_support import CATALOG, model

T0 = 1_760_000_000.0


def tables() -> HybridTables:
    """Four items: ``tv-1`` neighbours ``mount-1`` (0.75) and ``tv-2`` (0.25), ``tv-2`` neighbours
    ``mount-1``; ``boots-1`` trends; ``tv-1`` and ``tv-2`` share a category."""
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("covisit")] = 2.0
    weights[FEATURES.index("own")] = -1.0
    return HybridTables(
        items=["tv-1", "tv-2", "mount-1", "boots-1"],
        neighbour_ptr=np.array([0, 2, 3, 3, 3], dtype=np.int64),
        neighbour_idx=np.array([2, 1, 2], dtype=np.int64),
        neighbour_w=np.array([0.75, 0.25, 1.0], dtype=np.float32),
        popularity=np.log1p(np.array([3.0, 1.0, 2.0, 5.0])).astype(np.float32),
        trend=np.log1p(np.array([0.5, 0.0, 0.0, 4.0])).astype(np.float32),
        categories=["electronics.tv", "shoes"],
        item_category=np.array([0, 0, -1, 1], dtype=np.int64),
        params=HybridParams(popular_items=2),
        half_life_s=3600.0,
        weights=weights,
        spread=np.full(len(FEATURES), 2.0),
        info={"moments": 7},
    )


def viewed(item: str) -> Event:
    return Event(user_id="u", type="page_view", item_id=item).with_ts(T0)


def test_covisit_votes_are_the_neighbours_weighted_by_the_profile_share() -> None:
    votes = covisit_votes(tables(), [("tv-1", 3.0), ("tv-2", 1.0), ("unknown", 4.0)])
    assert votes == pytest.approx({"mount-1": 0.75 * 3 / 8 + 1.0 / 8, "tv-2": 0.25 * 3 / 8})


def test_candidates_are_own_items_then_neighbours_then_the_model_then_trending() -> None:
    profile = Profiler(CATALOG).replay([viewed("tv-1")])["u"]
    hand = tables()
    hand.weights = np.zeros(len(FEATURES))  # no weights: candidates keep their order
    order = rank(hand, None, profile, T0, depth=10)
    assert order == ["tv-1", "mount-1", "tv-2", "boots-1"]
    # the learned weights (co-visitation up, own items down) move the neighbour first
    assert rank(tables(), None, profile, T0, depth=10) == ["mount-1", "tv-2", "boots-1", "tv-1"]


def test_tables_round_trip_through_the_model_artifact(tmp_path: Path) -> None:
    with_tables = model()
    with_tables.hybrid = tables()
    with_tables.hybrid.purchase_rule = False
    with_tables.save(tmp_path)
    assert (tmp_path / "hybrid.npz").is_file()
    loaded = Model.load(tmp_path)
    assert loaded.hybrid is not None
    saved, back = tables(), loaded.hybrid
    assert back.items == saved.items and back.categories == saved.categories
    assert back.params == saved.params and back.half_life_s == saved.half_life_s
    assert back.info == saved.info
    assert back.purchase_rule is False and saved.purchase_rule is True  # the one set above
    for name in ("neighbour_ptr", "neighbour_idx", "neighbour_w", "popularity", "trend"):
        np.testing.assert_array_equal(getattr(back, name), getattr(saved, name))
    np.testing.assert_array_equal(back.item_category, saved.item_category)
    np.testing.assert_array_equal(back.coef, saved.coef)
    profile = Profiler(CATALOG).replay([viewed("tv-1")])["u"]
    assert rank(back, loaded, profile, T0, 10) == rank(saved, with_tables, profile, T0, 10)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["hybrid"]["features"] == list(FEATURES)
    assert meta["hybrid"]["weights"]["covisit"] == 2.0


def test_a_model_without_tables_writes_and_loads_none(tmp_path: Path) -> None:
    model().save(tmp_path)
    assert not (tmp_path / "hybrid.npz").exists()
    assert "hybrid" not in json.loads((tmp_path / "meta.json").read_text())
    assert Model.load(tmp_path).hybrid is None


def test_missing_tables_are_a_model_error_and_foreign_ones_are_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with_tables = model()
    with_tables.hybrid = tables()
    with_tables.hybrid.purchase_rule = False
    with_tables.save(tmp_path)
    (tmp_path / "hybrid.npz").unlink()
    with pytest.raises(ModelError, match="hybrid"):
        Model.load(tmp_path)
    with_tables.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["hybrid"]["features"] = ["something", "else"]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    # tables of another zmot version: the model still serves, without them, and says so
    assert Model.load(tmp_path).hybrid is None
    assert "fitted on other signals" in caplog.text


def test_shapes_bin_the_recency_rank_and_log_the_votes() -> None:
    at = {name: j for j, name in enumerate(BASE)}
    ranks = [0, 1, 2, 3, 4, 5, 9, 10, 30]
    base = np.zeros((len(ranks) + 1, len(BASE)))  # the last row: never touched
    for row, r in enumerate(ranks):
        base[row, at["touched"]] = 1.0
        base[row, at["touch_rank"]] = 1.0 / (1.0 + r)
        base[row, at["hours_since_touch"]] = 2.0
    base[:, at["covisit"]] = 0.5
    base[0, at["own"]], base[0, at["model"]] = 1.0, 1.5
    out = shapes(base)
    assert out.shape == (len(ranks) + 1, len(BASE) + len(SHAPES))
    assert np.array_equal(out[:, : len(BASE)], base)
    col = {name: len(BASE) + j for j, name in enumerate(SHAPES)}
    bins = ["touch_1", "touch_2", "touch_3", "touch_4_5", "touch_4_5", "touch_6_10"]
    bins += ["touch_6_10", "touch_11_up", "touch_11_up"]
    for row, name in enumerate(bins):
        onehot = out[row, [col[b] for b in SHAPES[3:9]]]
        assert onehot.sum() == 1.0 and out[row, col[name]] == 1.0, (ranks[row], name)
    assert not out[-1, [col[b] for b in SHAPES[3:9]]].any()
    assert out[0, col["hours_since_touch_sq"]] == 4.0 and out[-1, col["hours_since_touch_sq"]] == 0
    assert out[0, col["own_model"]] == 1.5 and out[1, col["own_model"]] == 0.0
    assert not out[:, col["category_popularity"]].any()  # no category weight: 0
    base[:, at["category"]] = np.linspace(0.0, 1.0, len(base))
    base[:, at["popularity"]] = np.arange(len(base), dtype=np.float64)
    again = shapes(base)[:, col["category_popularity"]]
    assert np.array_equal(again, base[:, at["category"]] * base[:, at["popularity"]])
    assert again[-1] == again.max() > 0  # strong category, popular: the largest
    assert np.allclose(out[:, col["log_covisit"]], np.log1p(50.0))
    assert not out[:, col["log_covisit_recent"]].any()  # no votes: 0, as for a new shopper


def test_tables_of_an_older_zmot_load_with_weight_0_on_signals_added_since(
    tmp_path: Path,
) -> None:
    """Signals are only appended: tables written before the last ones existed still serve,
    and rank as they did (the new signals weigh nothing)."""
    old = tables()
    old.weights[FEATURES.index("popularity")] = 0.7
    with_tables = model()
    with_tables.hybrid = old
    with_tables.save(tmp_path)
    kept = len(FEATURES) - 1  # as written by a zmot without the newest signal
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["hybrid"]["features"] = list(FEATURES[:kept])
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    arrays = dict(np.load(tmp_path / "hybrid.npz"))
    arrays["weights"], arrays["spread"] = arrays["weights"][:kept], arrays["spread"][:kept]
    np.savez(tmp_path / "hybrid.npz", **arrays)
    back = Model.load(tmp_path).hybrid
    assert back is not None
    assert back.weights.shape == (len(FEATURES),) and back.weights[-1] == 0.0
    np.testing.assert_array_equal(back.weights[:kept], old.weights[:kept])
    assert back.spread[-1] == 1.0
    profile = Profiler(CATALOG).replay([viewed("tv-1")])["u"]
    assert rank(back, None, profile, T0, 10) == rank(old, None, profile, T0, 10)
    meta["hybrid"]["features"] = list(FEATURES[1:kept])  # not a prefix: another zmot's
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert Model.load(tmp_path).hybrid is None
