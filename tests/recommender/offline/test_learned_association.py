"""The TV case comes out of the data: change what repair searchers buy, and the offer follows.

Nothing in the code knows what a TV is. The demo shop's repair searchers go on to buy TVs;
in a variant of the same history they buy washing machines instead, and the model trained on
that variant must put a washing machine on top for the same searches.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from recommender.core.arbitration import Arbiter, ArbitrationConfig, OfferRequest
from recommender.core.catalog import Catalog
from recommender.core.events import Event
from recommender.core.model import Model
from recommender.core.offers import OfferCatalog, load_offer_catalog
from recommender.core.replay import Profiler
from recommender.offline.training import train

REPAIR_SEARCHES = ["fernseher reparatur", "tv repair", "riparazione tv"]
TV, WASHER = "electronics.tv", "appliances.washing_machine"


def top_category(model: Model, catalog: Catalog, offers: OfferCatalog, query: str) -> str | None:
    """The category of the best offer by the model alone (no floor, no stage boost)."""
    config = ArbitrationConfig(relevance_floor=0.0, stage_boost=1.0)
    arbiter = Arbiter(model, catalog, offers, config=config)
    now = time.time()
    profile = Profiler(catalog).replay(
        [Event(user_id="new", type="search", query=query).with_ts(now)]
    )["new"]
    decision = arbiter.decide(profile, OfferRequest(k=1), now)
    assert not decision.fallback
    item = decision.offers[0].item
    return item.category if item else None


def washer_variant(data: Path, catalog: Catalog) -> list[Event]:
    """The demo history where every broken-TV shopper's TV events are about washing machines."""
    intents = {}
    with (data / "intents.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            intents[row["user_id"]] = set(row["intents"])
    by_category: dict[str, list[str]] = defaultdict(list)
    for item in catalog.items.values():
        by_category[item.category or ""].append(item.item_id)
    tvs, washers = sorted(by_category[TV]), sorted(by_category[WASHER])
    assert tvs and washers
    swap = {tv: washers[i % len(washers)] for i, tv in enumerate(tvs)}
    events = []
    with (data / "events.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            if "broken_tv" in intents[row["user_id"]] and row.get("item_id") in swap:
                row["item_id"] = swap[row["item_id"]]
            events.append(Event.model_validate(row))
    return events


@pytest.mark.parametrize("query", REPAIR_SEARCHES)
def test_repair_search_puts_a_tv_on_top(demo_shop: object, query: str) -> None:
    shop = demo_shop
    offers = load_offer_catalog(shop.data / "offers.jsonl", shop.catalog)  # type: ignore[attr-defined]
    assert top_category(shop.model, shop.catalog, offers, query) == TV  # type: ignore[attr-defined]


def test_variant_where_repair_searchers_buy_washers_flips_the_offer(demo_shop: object) -> None:
    shop = demo_shop
    catalog: Catalog = shop.catalog  # type: ignore[attr-defined]
    events = washer_variant(shop.data, catalog)  # type: ignore[attr-defined]
    model = train(events, catalog, Profiler(catalog))
    offers = load_offer_catalog(shop.data / "offers.jsonl", catalog)  # type: ignore[attr-defined]
    for query in REPAIR_SEARCHES:
        assert top_category(model, catalog, offers, query) == WASHER, query
    # the rest of the shop is untouched: hiking searches still lead outdoors
    assert (top_category(model, catalog, offers, "wanderschuhe") or "").startswith("outdoor.")
