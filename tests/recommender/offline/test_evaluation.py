"""The evaluation itself, on synthetic data with a known right answer.

Users search one of several words and then view the item that word determines. A recommender
that reads the last search must get HR@1 = 1; a random one about k / catalogue size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.profile import ProfileParams
from recommender.core.replay import Profiler
from recommender.offline.evaluation import Prediction, evaluate, split_events
from recommender.offline.training import TrainConfig, train

T0 = 1_760_000_000.0
N_ITEMS = 200
WORDS = {f"word{i}": f"item-{i}" for i in range(40)}


def ev(ts: float, **fields: object) -> Event:
    return Event(**fields).with_ts(ts)  # type: ignore[arg-type]


def histories(users: int = 300, seed: int = 3) -> list[Event]:
    rng = random.Random(seed)
    events = []
    for u in range(users):
        ts = T0 + u * 600
        for _step in range(4):
            word = rng.choice(sorted(WORDS))
            events.append(ev(ts, user_id=f"u{u}", type="search", query=word))
            events.append(ev(ts + 1, user_id=f"u{u}", type="page_view", item_id=WORDS[word]))
            ts += 120
    return events


def catalog() -> Catalog:
    return Catalog({f"item-{i}": Item(f"item-{i}", category=f"c{i % 10}") for i in range(N_ITEMS)})


def last_search_oracle(events: Sequence[Event]) -> list[str]:
    for event in reversed(events):
        if event.type == "search" and event.query in WORDS:
            return [WORDS[event.query]]
    return []


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    cat = catalog()
    events = histories()
    tr, te = split_events(events, split_ratio=0.5)
    # the rule is "the last search decides": a short half-life and a horizon of one event
    # let the live model learn it exactly
    profiler = Profiler(cat, params=ProfileParams(half_life_s=60.0))
    model = train(tr, cat, profiler, TrainConfig(epochs=30, no_components=16, horizon=1))
    rng = random.Random(0)
    items = sorted(cat.items)
    return evaluate(
        model,
        cat,
        profiler,
        tr,
        te,
        ks=[1, 10],
        extra_methods={
            "oracle": last_search_oracle,
            "random": lambda _events: rng.sample(items, 10),
        },
    )


def test_perfect_recommender_scores_one(result) -> None:  # type: ignore[no-untyped-def]
    metrics = result.method_metrics("oracle")
    assert result.n_predictions == 600  # 150 test users x 4 views
    assert metrics["hr@1"] == metrics["mrr@1"] == metrics["ndcg@1"] == 1.0


def test_random_recommender_scores_k_over_catalogue(result) -> None:  # type: ignore[no-untyped-def]
    hr = result.method_metrics("random")["hr@10"]
    expected = 10 / N_ITEMS
    # binomial standard error over 600 predictions ~ 0.009; allow 4 of them
    assert abs(hr - expected) < 4 * (expected * (1 - expected) / 600) ** 0.5


def test_live_model_learns_the_rule_and_beats_popular(result) -> None:  # type: ignore[no-untyped-def]
    live, popular = result.method_metrics("live"), result.method_metrics("popular")
    assert live["hr@1"] > 0.9
    assert live["hr@10"] > popular["hr@10"] + 0.5
    # the frozen profile knows nothing of the test searches
    assert result.method_metrics("frozen")["hr@1"] < 0.2


def test_metrics_follow_their_definitions(result) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    col = result.ranks[:, result.methods.index("live")]
    hits = (col >= 0) & (col < 10)
    assert result.method_metrics("live")["hr@10"] == pytest.approx(hits.mean())
    assert result.method_metrics("live")["mrr@10"] == pytest.approx(
        np.where(hits, 1.0 / (col + 1), 0).mean()
    )
    assert result.method_metrics("live")["ndcg@10"] == pytest.approx(
        np.where(hits, 1.0 / np.log2(col + 2), 0).mean()
    )


def test_dumped_predictions_carry_every_method_and_position() -> None:
    cat = catalog()
    events = histories(users=20)
    tr, te = split_events(events, split_ratio=0.5)
    model = train(tr, cat, Profiler(cat), TrainConfig(epochs=2, no_components=8))
    dumped = []
    evaluate(model, cat, Profiler(cat), tr, te, ks=[5], on_prediction=dumped.append)
    assert dumped
    first = dumped[0].to_json()
    assert set(first["methods"]) == {
        "live",
        "frozen",
        "popular",
        "popular_in_category",
        "recent",
        "live_without_purchase_rule",
    }
    assert all(len(v) <= 5 for v in first["methods"].values())
    by_user = [p for p in dumped if p.user_id == first["user_id"]]
    # positions index the user's test events (search at even, view at odd positions)
    assert [p.position for p in by_user] == [1, 3, 5, 7]
    assert all(
        p.target == te_event.item_id
        for p, te_event in zip(
            by_user,
            [e for e in te if e.user_id == first["user_id"] and e.type == "page_view"],
            strict=True,
        )
    )


def test_new_items_are_the_targets_the_user_never_touched_before() -> None:
    cat = catalog()
    events = histories(users=40)
    tr, te = split_events(events, split_ratio=0.5)
    model = train(tr, cat, Profiler(cat), TrainConfig(epochs=2, no_components=8))
    dumped: list[Prediction] = []
    result = evaluate(model, cat, Profiler(cat), tr, te, ks=[10], on_prediction=dumped.append)
    expected = [
        p.target
        not in {e.item_id for e in events if e.user_id == p.user_id and (e.ts or 0.0) < p.ts}
        for p in dumped
    ]
    assert [p.new for p in dumped] == expected
    assert 0 < sum(expected) < len(expected)  # both kinds occur
    new = result.only_new()
    assert new.n_predictions == sum(expected) == result.items("new").n_predictions
    assert result.items("any") is result
    # recent only offers what the user touched: it cannot hit a new item, but does hit repeats
    assert new.method_metrics("recent")["hr@10"] == 0.0
    assert result.method_metrics("recent")["hr@10"] > 0.0
    rows = [i for i, p in enumerate(dumped) if p.new]
    assert new.ranks.tolist() == result.ranks[rows].tolist()
    assert sorted(new.user_ids) == sorted({dumped[i].user_id for i in rows})
    assert new.method_metrics("recent")["coverage@10"] > 0.0  # lists shown at new targets


def test_discover_ranks_new_targets_in_the_lists_without_the_users_own_items() -> None:
    cat = catalog()
    events = histories(users=40)
    tr, te = split_events(events, split_ratio=0.5)
    model = train(tr, cat, Profiler(cat), TrainConfig(epochs=2, no_components=8))
    # a fixed list: the 30 items of the first words, whatever the user did
    fixed = [WORDS[w] for w in sorted(WORDS)][:30]
    dumped: list[Prediction] = []
    result = evaluate(
        model,
        cat,
        Profiler(cat),
        tr,
        te,
        ks=[3, 10],
        depth=12,
        on_prediction=dumped.append,
        extra_methods={"fixed": lambda _events: fixed},
    )
    discover = result.items("discover")
    assert discover.n_predictions == result.only_new().n_predictions > 0
    column = result.methods.index("fixed")
    at_new = [p for p in dumped if p.new]
    for p, rank in zip(at_new, discover.ranks[:, column].tolist(), strict=True):
        own = {e.item_id for e in events if e.user_id == p.user_id and (e.ts or 0.0) < p.ts}
        kept = [item for item in fixed if item not in own][:12]  # the depth, after filtering
        assert rank == (kept.index(p.target) if p.target in kept else -1)
        assert p.discover is not None and p.discover["fixed"] == kept[:10]
        assert not own & set(p.discover["live"])  # the live list, filtered too
    for p in dumped:  # every prediction carries the filtered lists, not only new targets
        own = {e.item_id for e in events if e.user_id == p.user_id and (e.ts or 0.0) < p.ts}
        assert (
            p.discover is not None
            and p.discover["fixed"] == [i for i in fixed if i not in own][:10]
        )
    # leaving the user's own items out moves new targets up (or keeps them): never down
    new_ranks = result.only_new().ranks[:, column]
    moved = discover.ranks[:, column]
    found = new_ranks >= 0
    assert (moved[found] <= new_ranks[found]).all() and (moved[found] >= 0).all()
    assert (moved[found] < new_ranks[found]).any()  # some list held the user's own items
    # recent offers nothing new; its discover list is empty
    assert discover.method_metrics("recent")["hr@10"] == 0.0
    assert all(p.discover["recent"] == [] for p in at_new if p.discover is not None)
