"""Feature extraction and query normalisation."""

from __future__ import annotations

from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.features import FeatureConfig, event_features
from recommender.core.text import fold, tokens

CATALOG = Catalog({"i1": Item("i1", title="T", category="electronics.tv", brand="Acme")})


def test_fold_and_tokens_ignore_case_accents_and_fillers() -> None:
    assert (
        tokens("Fernseher Reparatur") == tokens("fernseher reparatur") == ["fernseher", "reparatur"]
    )
    assert tokens("FERNSEHER-REPARATUR!") == ["fernseher", "reparatur"]
    assert tokens("riparazione tv") == ["riparazione", "tv"]
    assert tokens("Größe für Wanderschuhe") == ["grosse", "wanderschuhe"]
    assert tokens("scarpe da trekking") == ["scarpe", "trekking"]
    assert tokens("the tv the TV") == ["tv"]
    assert fold("Crème Brûlée") == "creme brulee"


def test_search_features_have_tokens_and_prefixes() -> None:
    event = Event(user_id="u", type="search", query="Fernseher Reparatur")
    feats = event_features(event, CATALOG.get, FeatureConfig())
    assert set(feats) == {"kind:search", "q:fernseher", "q:reparatur", "qp:ferns", "qp:repar"}
    assert feats["q:fernseher"] == feats["q:reparatur"] > feats["qp:ferns"] > 0


def test_item_features_use_the_catalog_and_purchases_are_marked() -> None:
    view = event_features(
        Event(user_id="u", type="page_view", item_id="i1"), CATALOG.get, FeatureConfig()
    )
    assert set(view) == {
        "kind:page_view",
        "item:i1",
        "cat:electronics.tv",
        "cat:electronics",
        "brand:Acme",
    }
    buy = event_features(
        Event(user_id="u", type="purchase", item_id="i1"), CATALOG.get, FeatureConfig()
    )
    assert buy["item:i1"] > view["item:i1"]
    assert "bought:item:i1" in buy and "bought:cat:electronics.tv" in buy
    unknown = event_features(
        Event(user_id="u", type="page_view", item_id="zz"), CATALOG.get, FeatureConfig()
    )
    assert set(unknown) == {"kind:page_view", "item:zz"}


def test_exposure_events_carry_no_interest() -> None:
    event = Event(user_id="u", type="impression", offer_id="o1")
    assert event_features(event, CATALOG.get, FeatureConfig()) == {}
