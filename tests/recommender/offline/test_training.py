"""Training on synthetic histories with a known answer: the learned association is the data's."""

from __future__ import annotations

import random

import pytest

from recommender.core.arbitration import Arbiter, ArbitrationConfig, OfferRequest
from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.offers import catalog_offers
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.core.scoring import Decision
from recommender.offline.training import TrainConfig, build_contexts, train

T0 = 1_760_000_000.0


def ev(ts: float, **fields: object) -> Event:
    """An event at ``ts`` epoch seconds (the JSON contract's numbers are milliseconds)."""
    return Event(**fields).with_ts(ts)  # type: ignore[arg-type]


def shop() -> Catalog:
    items = {}
    for group in ("red", "blue", "green"):
        for i in range(6):
            item_id = f"{group}-{i}"
            items[item_id] = Item(item_id, title=f"{group} thing {i}", category=f"shop.{group}")
    return Catalog(items)


def histories(word_to_group: dict[str, str], users: int = 300, seed: int = 1) -> list[Event]:
    """Each user searches one word, then views three items of the group that word leads to."""
    rng = random.Random(seed)
    events = []
    words = sorted(word_to_group)
    for u in range(users):
        word = words[u % len(words)]
        ts = T0 + u * 1000
        events.append(ev(ts, user_id=f"u{u}", type="search", query=f"{word} please"))
        for step in range(3):
            item = f"{word_to_group[word]}-{rng.randrange(6)}"
            events.append(ev(ts + 10 + step, user_id=f"u{u}", type="page_view", item_id=item))
    return events


def rank(arbiter: Arbiter, profile: Profile | None, k: int, now: float) -> Decision:
    """The k best offers, by the model alone: no floor, any number per category."""
    return arbiter.decide(profile, OfferRequest(k=k, same_category=True), now)


def top_group(arbiter: Arbiter, query: str) -> str:
    profiler = Profiler(arbiter.catalog)
    profile = profiler.replay([ev(T0 * 2, user_id="new", type="search", query=query)])["new"]
    decision = rank(arbiter, profile, 3, now=T0 * 2)
    assert not decision.fallback
    groups = {o.offer.item_id.split("-")[0] for o in decision.offers}
    assert len(groups) == 1, decision.offers
    return groups.pop()


def ranker_for(events: list[Event]) -> Arbiter:
    catalog = shop()
    model = train(events, catalog, Profiler(catalog), TrainConfig(epochs=15, no_components=16))
    config = ArbitrationConfig(relevance_floor=0.0, substitute_window_s=0.0)
    return Arbiter(model, catalog, catalog_offers(catalog), config=config)


def test_contexts_are_profiles_before_each_target() -> None:
    events = histories({"alpha": "red"}, users=2)
    contexts = build_contexts(events, Profiler(shop()), "any")
    assert len(contexts.rows) == 6  # three views per user, each after at least the search
    assert set(contexts.rows[0]) == {"q:alpha", "q:please", "kind:search", "qp:pleas"}
    assert contexts.items[0].startswith("red-")
    assert abs(sum(contexts.rows[1].values()) - 1.0) < 1e-9


@pytest.mark.parametrize(
    "mapping", [{"alpha": "red", "beta": "blue"}, {"alpha": "blue", "beta": "green"}]
)
def test_search_word_leads_to_the_group_the_data_says(mapping: dict[str, str]) -> None:
    ranker = ranker_for(histories(mapping))
    for word, group in mapping.items():
        assert top_group(ranker, word) == group


def test_unknown_profile_gets_flagged_popular_fallback() -> None:
    ranker = ranker_for(histories({"alpha": "red", "beta": "blue"}))
    profile = Profiler(ranker.catalog).replay([ev(T0, user_id="x", type="search", query="zzz")])[
        "x"
    ]
    # "zzz" is unknown but kind:search is known: still personalised, never an error
    assert rank(ranker, profile, 2, now=T0).offers
    decision = rank(ranker, None, 2, now=T0)
    assert decision.fallback and len(decision.offers) == 2


def test_bought_item_is_not_offered_again_within_the_window() -> None:
    ranker = ranker_for(histories({"alpha": "red", "beta": "blue"}))
    profiler = Profiler(ranker.catalog)
    events = [ev(T0, user_id="b", type="search", query="alpha")]
    profile = profiler.replay(events)["b"]
    first = rank(ranker, profile, 1, now=T0).offers[0].offer.item_id
    profiler.apply(profile, ev(T0 + 5, user_id="b", type="purchase", item_id=first))
    after = [o.offer.item_id for o in rank(ranker, profile, 6, now=T0 + 10).offers]
    assert first not in after
    later = T0 + 31 * 86400
    assert first in [o.offer.item_id for o in rank(ranker, profile, 18, now=later).offers]
