"""The hybrid ranker on synthetic histories where one profile signal decides, and inside
evaluate: the core ranking of the replayed profile is what evaluation computed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.hybrid import rank
from recommender.core.model import Model
from recommender.core.profile import ProfileParams
from recommender.core.replay import Profiler
from recommender.offline.evaluation import Prediction, evaluate, split_events
from recommender.offline.hybrid import FEATURES, Hybrid
from recommender.offline.training import TrainConfig, train

T0 = 1_760_000_000.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR


def event(user: str, item: str, ts: float, kind: str = "page_view") -> Event:
    return Event(user_id=user, type=kind, item_id=item).with_ts(ts)


def no_model(_events: Sequence[Event]) -> Model | None:
    return None


def fitted(events: list[Event]) -> Hybrid:
    """A hybrid on ``events`` without LightFM (its signals are then 0): only the tables and
    the shopper's own history can decide."""
    return Hybrid(events, Catalog(), Profiler(), None, fit_model=no_model)


def pairs_history(users: range) -> list[Event]:
    """Items come in fixed pairs: whoever views a<k> views b<k> next. A shopper's pairs are two
    days apart, so only the pair itself is co-visited."""
    events: list[Event] = []
    for u in users:
        start = T0 + u * 4 * HOUR
        for j in range(3):
            k = (u + 7 * j) % 20
            events.append(event(f"u{u}", f"a{k}", start + j * 2 * DAY))
            events.append(event(f"u{u}", f"b{k}", start + j * 2 * DAY + MINUTE))
    return events


def repurchase_history(users: range) -> list[Event]:
    """Each shopper viewed an item, bought a refill two days later, and two weeks after that
    viewed three other items; next they buy the refill again. Only the purchase
    memory tells it apart: it is neither the newest item, nor the heaviest or the weakest in
    the profile, and nobody else knows these items."""
    events: list[Event] = []
    for u in range(users.start, users.stop):
        user, start = f"u{u}", T0 + u * 4 * HOUR
        events.append(event(user, f"old{u}", start - 2 * DAY))
        events.append(event(user, f"refill{u}", start, "purchase"))
        recent = start + 14 * DAY
        for i, item in enumerate([f"x{u}", f"y{u}", f"z{u}"]):
            events.append(event(user, item, recent + i * 3 * HOUR))
        events.append(event(user, f"refill{u}", recent + 20 * HOUR, "purchase"))
    return events


def hit_at_1(hybrid: Hybrid, cases: list[tuple[list[Event], str]]) -> float:
    return sum(hybrid(history)[:1] == [target] for history, target in cases) / len(cases)


def test_hybrid_learns_that_co_visitation_decides() -> None:
    hybrid = fitted(pairs_history(range(60)))
    assert hybrid.n_moments > 0 and hybrid.weights
    w = hybrid.weights
    covisit = {"covisit", "covisit_recent"}  # by profile weight and by recency: both fit here
    assert max(w, key=lambda n: w[n]) in covisit
    assert sum(w[n] for n in covisit) > 1.0 > w["own"]
    cases = [([event(f"new{k}", f"a{k}", T0 + 30 * DAY)], f"b{k}") for k in range(20)]
    assert hit_at_1(hybrid, cases) >= 0.9


def test_hybrid_learns_that_the_purchase_memory_decides() -> None:
    hybrid = fitted(repurchase_history(range(60)))
    w = hybrid.weights
    purchase = {"bought", "hours_since_bought"}  # both read the purchase memory
    assert sum(w[n] for n in purchase) > 1.0
    assert w["bought"] > max(v for n, v in w.items() if n not in purchase)
    # new shoppers with the same habit, after training: their refill comes first
    later = repurchase_history(range(100, 120))
    cases = []
    for u in range(100, 120):
        mine = [e for e in later if e.user_id == f"u{u}"]
        cases.append((mine[:-1], mine[-1].item_id or ""))
        profile = Profiler().replay(mine[:-1])[f"u{u}"]
        own = sorted(
            (n for n in profile.weights if n.startswith("item:")), key=profile.weights.__getitem__
        )
        assert own[:2] == [f"item:old{u}", f"item:refill{u}"]  # profile order would miss it
    assert hit_at_1(hybrid, cases) >= 0.9


def bestseller_history(users: range) -> tuple[list[Event], Catalog]:
    """Shoppers of ten categories: each views an item nobody else knows, then the bestseller
    of its category. A crowd makes five items of categories nobody shops in far more popular
    than any bestseller, and each category holds a rarely viewed item besides: popularity alone
    points to the crowd's items, the category alone does not tell its items apart, and no
    item ever co-occurs with the shopper's first one."""
    events: list[Event] = []
    items: dict[str, Item] = {}
    for k in range(15):
        for name in (f"best{k}", f"rare{k}", f"crowd{k}"):
            items[name] = Item(name, category=f"c{k}")
    for c in range(10, 15):  # the crowd: 40 views of each of its five items, early on
        for v in range(40):
            events.append(event(f"crowd{v}", f"crowd{c}", T0 - 2 * DAY + (c * 40 + v) * MINUTE))
    for k in range(10):
        events.append(event(f"lurker{k}", f"rare{k}", T0 - DAY))
    for u in users:
        k, start = u % 10, T0 + u * 4 * HOUR
        items[f"first{u}"] = Item(f"first{u}", category=f"c{k}")
        events.append(event(f"u{u}", f"first{u}", start))
        events.append(event(f"u{u}", f"best{k}", start + MINUTE))
    return events, Catalog(items)


def test_hybrid_learns_what_is_popular_in_the_shoppers_category() -> None:
    events, _ = bestseller_history(range(80))
    later, catalog = bestseller_history(range(200, 230))  # new shoppers, new first items
    catalog.items.update(bestseller_history(range(80))[1].items)
    hybrid = Hybrid(events, catalog, Profiler(catalog), None, fit_model=no_model)
    w = hybrid.weights
    assert w["category_popularity"] > 0.5
    assert w["category_popularity"] > max(w["popularity"], w["trend"])
    cases = []
    for u in range(200, 230):
        mine = [e for e in later if e.user_id == f"u{u}"]
        cases.append((mine[:-1], mine[-1].item_id or ""))
    assert hit_at_1(hybrid, cases) >= 0.9


def moving_on_history(users: range) -> list[Event]:
    """Each shopper compares two TVs, buys one, then looks at wall mounts: nobody comes back
    to the TV they bought."""
    events: list[Event] = []
    for u in users:
        user, start, k = f"u{u}", T0 + u * 4 * HOUR, u % 10
        events.append(event(user, f"tv{k}", start))
        events.append(event(user, f"tv{k + 10}", start + HOUR))
        events.append(event(user, f"tv{k}", start + 2 * HOUR, "purchase"))
        for i in range(3):
            events.append(event(user, f"mount{(k + i) % 10}", start + (3 + i) * HOUR))
    return events


def test_the_purchase_rule_follows_whether_shoppers_come_back_to_what_they_bought() -> None:
    """Same fitting, two habits: refills bought again drop the rule (and the ranker then
    offers the refill, as above), a TV never looked at again keeps it."""
    returning = fitted(repurchase_history(range(60)))
    test = returning.purchase_rule
    assert test["wins"] > test["losses"] and test["p"] < 0.05
    assert returning.tables.purchase_rule is False
    moving_on = fitted(moving_on_history(range(60)))
    assert moving_on.n_moments > 0 and moving_on.purchase_rule["wins"] == 0
    assert moving_on.tables.purchase_rule is True


def test_the_ranker_learns_from_every_stretch() -> None:
    """Three stretches of 20% hold the moments of the last 60% of the time, one the last 20%."""
    from recommender.core.hybrid import HybridParams

    events = pairs_history(range(60))
    one, three = (
        Hybrid(
            events, Catalog(), Profiler(), None, fit_model=no_model, params=HybridParams(folds=k)
        )
        for k in (1, 3)
    )
    span = max(e.ts or 0.0 for e in events) - min(e.ts or 0.0 for e in events)
    late = [e for e in events if (e.ts or 0.0) >= max(e.ts or 0.0 for e in events) - 0.6 * span]
    assert one.n_moments < three.n_moments == len(late)


def test_the_served_purchase_exclusion_follows_the_model_unless_set() -> None:
    from recommender.core.runtime import resolve
    from recommender.core.settings import Settings

    def days(settings: Settings, tables_rule: bool) -> float:
        meta = {"hybrid": {"offset": -3.0, "purchase_rule": tables_rule}}
        return resolve(settings, meta).arbitration.purchase_exclusion_s / DAY

    assert days(Settings(), True) == 30.0
    assert days(Settings(), False) == 0.0
    assert days(Settings(purchase_exclusion_days=30.0), False) == 30.0  # the shop's rule wins
    assert days(Settings(hybrid="off"), False) == 30.0  # the plain model: the default rule
    assert resolve(Settings(), {}).arbitration.purchase_exclusion_s == 30 * DAY  # no model


def test_the_ranker_reads_no_event_after_the_moment() -> None:
    """Ranking a history gives the same list whether or not later events exist elsewhere."""
    events = pairs_history(range(60))
    hybrid = fitted(events)
    history = [event("me", "a3", T0 + 30 * DAY)]
    first = hybrid(history)
    hybrid(history + [event("me", "b3", T0 + 30 * DAY + MINUTE)])
    assert hybrid(history) == first


def test_too_little_to_learn_from_leaves_the_weights_empty() -> None:
    hybrid = fitted(pairs_history(range(2)))
    assert hybrid.weights == {}
    assert hybrid([event("me", "a0", T0 + 30 * DAY)])  # still ranks: candidates in order


def searches(users: int = 120) -> list[Event]:
    """The shopper views the item their last search names (the model's signal)."""
    rng = np.random.default_rng(5)
    events: list[Event] = []
    for u in range(users):
        ts = T0 + u * 600
        for _ in range(4):
            word = int(rng.integers(0, 30))
            events.append(Event(user_id=f"u{u}", type="search", query=f"word{word}").with_ts(ts))
            events.append(event(f"u{u}", f"item-{word}", ts + 1))
            ts += 120
    return events


class Searched:
    """Train/test split of :func:`searches`, a LightFM model on the training part and the
    hybrid fitted beside it."""

    def __init__(self, half_life_s: float, epochs: int) -> None:
        self.cat = cat = Catalog(
            {f"item-{i}": Item(f"item-{i}", category=f"c{i % 5}") for i in range(60)}
        )
        self.train, self.test = split_events(searches(), split_ratio=0.6)
        self.profiler = profiler = Profiler(cat, params=ProfileParams(half_life_s=half_life_s))
        config = TrainConfig(epochs=epochs, no_components=8, horizon=1)
        self.model = train(self.train, cat, profiler, config)
        self.hybrid = Hybrid(
            self.train,
            cat,
            profiler,
            self.model,
            fit_model=lambda part: train(part, cat, profiler, config),
        )


def test_hybrid_in_evaluate_leaves_the_other_methods_alone() -> None:
    s = Searched(half_life_s=60.0, epochs=10)
    model, cat, profiler, tr, te, hybrid = s.model, s.cat, s.profiler, s.train, s.test, s.hybrid
    assert set(hybrid.weights) <= set(FEATURES)
    alone = evaluate(model, cat, profiler, tr, te, ks=[10])
    both = evaluate(model, cat, profiler, tr, te, ks=[10], extra_methods={"hybrid": hybrid})
    assert both.methods == [*alone.methods, "hybrid"]
    np.testing.assert_array_equal(both.ranks[:, :-1], alone.ranks)
    summary = both.summary()["methods"]
    assert set(summary["hybrid"]) >= {"hr@10", "mrr@10", "ndcg@10", "coverage"}
    assert summary["hybrid"]["hr@10"] >= summary["popular"]["hr@10"]
    assert summary["hybrid"]["hr@10"] == pytest.approx(both.method_metrics("hybrid")["hr@10"])


def test_evaluation_ranks_what_the_core_ranks_for_the_replayed_profile() -> None:
    """At every evaluation moment, the core ranking of the profile the worker's profiler builds
    from the history so far, at its last event time, is the list evaluation recorded."""
    s = Searched(half_life_s=600.0, epochs=5)
    model, cat, profiler, tr, te, hybrid = s.model, s.cat, s.profiler, s.train, s.test, s.hybrid
    assert hybrid.weights  # a ranker that learned something, so the order is its own
    predictions: list[Prediction] = []
    evaluate(
        model,
        cat,
        profiler,
        tr,
        te,
        ks=[10],
        extra_methods={"hybrid": hybrid},
        on_prediction=predictions.append,
    )
    assert len(predictions) > 20
    for p in predictions:
        mine = sorted((e for e in te if e.user_id == p.user_id), key=lambda e: e.ts or 0.0)
        history = [e for e in tr if e.user_id == p.user_id] + mine[: p.position]
        profile = Profiler(cat, params=profiler.params).replay(history)[p.user_id]
        ranked = rank(hybrid.tables, model, profile, profile.last_ts or 0.0, depth=10)
        assert ranked == p.lists["hybrid"]
