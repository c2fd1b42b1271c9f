"""Arbitration on a hand-made model: rules, the priority formula, floor, diversity, journey."""

from __future__ import annotations

import time

import pytest

from recommender.core.arbitration import OfferRequest
from tests.recommender.core.arbitration_support import Exposed, arbiter, one_per_item, profile

TV = {"q:tv": 1.0}
NOW = time.time()


def ids(decision: object) -> list[str]:
    return [s.offer.offer_id for s in decision.offers]  # type: ignore[attr-defined]


def test_expired_future_and_ineligible_offers_are_never_returned() -> None:
    rows = [
        {"offer_id": "expired", "item_id": "tv-1", "value": 100, "ends_at": NOW - 1},
        {"offer_id": "future", "item_id": "tv-1", "value": 100, "starts_at": NOW + 3600},
        {
            "offer_id": "members",
            "item_id": "tv-1",
            "value": 100,
            "eligibility": [{"requires_feature": "cat:vip"}],
        },
        {
            "offer_id": "not-for-boots",
            "item_id": "tv-1",
            "value": 100,
            "eligibility": [{"excludes_feature": "q:tv"}],
        },
        {"offer_id": "plain", "item_id": "tv-2", "value": 1},
    ]
    decision = arbiter(rows).decide(profile(TV), OfferRequest(k=5), NOW)
    assert ids(decision) == ["plain"]
    # the same offers become eligible when the profile satisfies them
    vip = arbiter(rows).decide(profile({**TV, "cat:vip": 0.5}), OfferRequest(k=5), NOW)
    assert "members" in ids(vip)
    assert "expired" not in ids(vip) and "future" not in ids(vip)


def test_higher_value_wins_at_equal_propensity_and_a_lever_flips_it() -> None:
    rows = [
        {"offer_id": "cheap", "item_id": "twin-a", "value": 10},
        {"offer_id": "dear", "item_id": "twin-b", "value": 20},
    ]
    request = OfferRequest(k=2, debug=True)
    user = profile({"q:boots": 1.0})
    decision = arbiter(rows).decide(user, request, NOW)
    assert ids(decision) == ["dear", "cheap"]
    cheap, dear = decision.offers[1].debug, decision.offers[0].debug
    assert cheap is not None and dear is not None
    assert cheap["propensity"] == pytest.approx(dear["propensity"])
    for part in (cheap, dear):
        assert set(part) >= {"propensity", "value", "context_weight", "lever", "priority"}
        product = part["propensity"] * part["value"] * part["context_weight"] * part["lever"]  # type: ignore[operator]
        assert part["priority"] == pytest.approx(product)
    levered = [{**rows[0], "lever": 3.0}, rows[1]]
    flipped = arbiter(levered).decide(user, request, NOW)
    assert ids(flipped) == ["cheap", "dear"]
    assert flipped.offers[0].debug is not None and flipped.offers[0].debug["lever"] == 3.0
    # without debug=true no parts are attached
    assert arbiter(rows).decide(user, OfferRequest(k=2), NOW).offers[0].debug is None


def test_weak_unrelated_signal_gets_no_offer_or_a_flagged_fallback() -> None:
    weak = profile({"q:weak": 0.2})
    plain = arbiter(one_per_item(), relevance_floor=0.05).decide(weak, OfferRequest(k=3), NOW)
    assert plain.offers == [] and plain.fallback is False
    assert plain.note and "floor" in plain.note
    flagged = arbiter(one_per_item(), relevance_floor=0.05, floor_fallback=True).decide(
        weak, OfferRequest(k=3, debug=True), NOW
    )
    assert flagged.fallback is True and flagged.offers
    assert all(s.debug is not None and s.debug["propensity"] is None for s in flagged.offers)
    # a related signal clears the same floor
    strong = arbiter(one_per_item(), relevance_floor=0.05).decide(profile(TV), OfferRequest(), NOW)
    assert strong.offers and strong.fallback is False
    assert strong.offers[0].offer.item_id == "tv-1"


def test_no_two_offers_for_one_item_or_category_unless_asked() -> None:
    rows = [*one_per_item(), {"offer_id": "tv-deal", "item_id": "tv-1", "value": 0.5}]
    decision = arbiter(rows).decide(profile(TV), OfferRequest(k=4), NOW)
    items = [s.offer.item_id for s in decision.offers]
    categories = [s.item.category for s in decision.offers if s.item]
    assert len(set(items)) == len(items) and len(set(categories)) == len(categories)
    same = arbiter(rows).decide(profile(TV), OfferRequest(k=4, same_category=True), NOW)
    same_items = [s.offer.item_id for s in same.offers]
    assert same_items[:2] == ["tv-1", "tv-2"] and len(set(same_items)) == len(same_items)


def test_category_offer_resolves_to_the_users_best_item_of_it() -> None:
    rows = [{"offer_id": "any-tv", "category": "electronics.tv", "title": "TV week"}]
    decision = arbiter(rows).decide(profile(TV), OfferRequest(), NOW)
    assert [(s.offer.offer_id, s.offer.item_id) for s in decision.offers] == [("any-tv", "tv-1")]
    bought = profile(TV, purchases={"tv-1": NOW - 60})
    after = arbiter(rows, substitute_window_s=0.0).decide(bought, OfferRequest(), NOW)
    assert [s.offer.item_id for s in after.offers] == ["tv-2"]


def test_frequency_cap_and_dismissals_use_the_profile_counts() -> None:
    rows = [
        {"offer_id": "capped", "item_id": "tv-1", "value": 5, "max_impressions": 3},
        {"offer_id": "other", "item_id": "boots-1"},
    ]
    request = OfferRequest(k=2)
    fresh = Exposed(weights=dict(TV), landmark=NOW, last_ts=NOW, shown_n={"capped": 2})
    assert "capped" in ids(arbiter(rows).decide(fresh, request, NOW))
    shown3 = Exposed(weights=dict(TV), landmark=NOW, last_ts=NOW, shown_n={"capped": 3})
    assert "capped" not in ids(arbiter(rows).decide(shown3, request, NOW))
    dismissed = Exposed(weights=dict(TV), landmark=NOW, last_ts=NOW, dismissed_n={"capped": 3})
    assert "capped" not in ids(arbiter(rows).decide(dismissed, request, NOW))
    twice = Exposed(weights=dict(TV), landmark=NOW, last_ts=NOW, dismissed_n={"capped": 2})
    assert "capped" in ids(arbiter(rows).decide(twice, request, NOW))
    # caps hold in the fallback too
    assert "capped" not in ids(arbiter(rows).fallback(shown3, request, NOW))


def test_after_a_tv_purchase_complements_and_support_not_tvs() -> None:
    rows = [
        *one_per_item(value=1.0),
        {"offer_id": "support", "item_id": "setup-1", "stages": ["smot"], "value": 1.0},
    ]
    rows = [r for r in rows if r["offer_id"] != "o-setup-1"]
    bought = profile({"q:tv": 1.0, "kind:purchase": 0.1}, purchases={"tv-1": NOW - 3600})
    bought.last_ts = NOW - 3600
    decision = arbiter(rows).decide(bought, OfferRequest(k=3, debug=True), NOW)
    assert decision.stage == "smot"
    items = [s.offer.item_id for s in decision.offers]
    assert "tv-1" not in items and "tv-2" not in items
    assert items[0] == "mount-1"
    assert "support" in ids(decision)
    top = decision.offers[0]
    assert top.debug is not None and top.debug["complement_weight"] == pytest.approx(1.8)
    assert any("often add" in r for r in top.reasons)
    # once the substitute window is over, TVs (other than the one bought) are back
    later = NOW + 15 * 86400
    assert "tv-2" in [
        s.offer.item_id
        for s in arbiter(rows).decide(bought, OfferRequest(k=5, same_category=True), later).offers
    ]


def test_stage_and_placement_and_channel_filters() -> None:
    rows = [
        {"offer_id": "web-only", "item_id": "tv-1", "value": 9, "channels": ["web"]},
        {"offer_id": "home-only", "item_id": "tv-2", "value": 9, "placements": ["home"]},
        {"offer_id": "fmot", "item_id": "mount-1", "value": 9, "stages": ["fmot"]},
        {"offer_id": "any", "item_id": "boots-1"},
    ]
    placements = {"ad": {"channels": ["ad"]}}
    a = arbiter(rows, placements=placements)
    user = profile(TV)
    assert ids(a.decide(user, OfferRequest(k=5, placement="ad"), NOW)) == ["any"]
    home = OfferRequest(k=5, placement="home", channel="web", same_category=True)
    web = ids(a.decide(user, home, NOW))
    assert set(web) == {"web-only", "home-only", "any"}
    cart = profile({**TV, "kind:add_to_cart": 0.1})
    assert "fmot" in ids(a.decide(cart, OfferRequest(k=5, same_category=True), NOW))


def test_a_placement_that_excludes_seen_items_offers_only_what_the_shopper_has_not_touched() -> (
    None
):
    a = arbiter(one_per_item(), placements={"new_for_you": {"exclude_seen": True}})
    request = OfferRequest(k=3, same_category=True)
    discover = OfferRequest(k=3, same_category=True, placement="new_for_you")
    # the TV searcher who looked at the 55in TV and bought a mount, and still holds the 65in
    seen = {"tv-1": NOW - 60}
    user = profile({**TV, "item:tv-2": 0.5}, touched=seen, purchases={"mount-2": NOW - 3e6})
    assert set(ids(a.decide(user, request, NOW))[:2]) == {"o-tv-1", "o-tv-2"}
    fresh = ids(a.decide(user, discover, NOW))
    assert fresh and not {"o-tv-1", "o-tv-2", "o-mount-2"} & set(fresh)
    assert fresh[0] == "o-mount-1"  # the best TV-related item left
    # a shopper with nothing the model knows gets popular offers, here too without the seen
    weak = profile({"q:weak": 0.2}, touched={"boots-1": NOW - 60})
    floor = {"relevance_floor": 0.05, "floor_fallback": True}
    a = arbiter(one_per_item(), placements={"new_for_you": {"exclude_seen": True}}, **floor)
    assert ids(a.decide(weak, OfferRequest(k=2), NOW))[0] == "o-boots-1"
    popular = a.decide(weak, OfferRequest(k=2, placement="new_for_you"), NOW)
    assert popular.fallback and ids(popular) == ["o-tv-1", "o-mount-1"]


def test_a_placement_with_max_seen_offers_at_most_that_many_seen_items_the_best_first() -> None:
    placements = {
        "one": {"max_seen": 1},
        "none": {"max_seen": 0},
        "many": {"max_seen": 5},
        "fresh": {"exclude_seen": True},
    }
    a = arbiter(one_per_item(), placements=placements)
    seen = {"tv-1": NOW - 60}
    user = profile({**TV, "item:tv-2": 0.5}, touched=seen, purchases={"mount-2": NOW - 3e6})
    held = {"o-tv-1", "o-tv-2", "o-mount-2"}

    def decide(placement: str | None) -> list[str]:
        return ids(a.decide(user, OfferRequest(k=3, same_category=True, placement=placement), NOW))

    plain, fresh = decide(None), decide("fresh")
    assert len(held & set(plain)) == 2  # the two TVs lead the uncapped list
    first_seen = next(o for o in plain if o in held)
    one = decide("one")
    assert [o for o in one if o in held] == [first_seen]  # the best seen item stays
    assert [o for o in one if o not in held] == fresh[:2]  # the rest: the best new ones
    assert decide("none") == fresh  # 0 is exclude_seen
    assert decide("many") == plain  # a cap above what the shopper holds changes nothing
    # the popular list of a shopper the model knows nothing of is capped the same way
    floor = {"relevance_floor": 0.05, "floor_fallback": True}
    a = arbiter(one_per_item(), placements=placements, **floor)
    popular = a.decide(profile({"q:weak": 0.2}), OfferRequest(k=3), NOW)
    assert popular.fallback
    top2 = {o.offer.item_id: NOW - 60 for o in popular.offers[:2]}
    weak = profile({"q:weak": 0.2}, touched=top2)
    capped = a.decide(weak, OfferRequest(k=3, placement="one"), NOW)
    assert capped.fallback and ids(capped)[0] == ids(popular)[0]
    assert sum(o.offer.item_id in top2 for o in capped.offers) == 1 and len(capped.offers) == 3


def test_context_item_weighs_its_learned_complements() -> None:
    request = OfferRequest(k=3, context_item="tv-2", debug=True)
    decision = arbiter(one_per_item()).decide(profile({"q:tv": 1.0}), request, NOW)
    mount = next(s for s in decision.offers if s.offer.item_id == "mount-1")
    assert mount.debug is not None and mount.debug["complement_weight"] == pytest.approx(1.8)
    assert mount.reasons[0] == 'goes well with "65in TV"'
    plain = arbiter(one_per_item()).decide(profile({"q:tv": 1.0}), OfferRequest(k=3), NOW)
    assert not any("goes well" in r for s in plain.offers for r in s.reasons)


def test_reasons_follow_the_request_language() -> None:
    rows = one_per_item()
    for lang, text in (("de", "gesucht"), ("it", "cercato"), ("en", "searched")):
        user = profile({"q:tv": 1.0})
        decision = arbiter(rows).decide(user, OfferRequest(k=1, lang=lang), NOW)
        assert any(text in r for r in decision.offers[0].reasons), decision.offers[0].reasons
