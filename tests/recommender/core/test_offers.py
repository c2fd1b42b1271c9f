"""Offer catalog v2: formats, validation errors naming line and field, versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.core.errors import CatalogError, ConfigError
from recommender.core.journey import stage_of
from recommender.core.offers import load_offer_catalog
from recommender.core.placements import load_placements
from recommender.core.profile import Profile
from tests.recommender.core.arbitration_support import CATALOG

YAML = """\
offers:
  - offer_id: tv-week
    category: electronics.tv
    title: TV week
    value: 40
    starts_at: 2026-11-01T00:00:00Z
    ends_at: "2026-12-01T00:00:00Z"
    stages: [zmot, fmot]
    channels: [web, ad]
    placements: [home]
    group: product
    eligibility:
      - requires_feature: "q:*"
      - excludes_feature: "bought:cat:electronics.tv"
      - min_weight: {feature: "cat:electronics.tv", value: 0.1}
    max_impressions: 3
    lever: 1.5
  - offer_id: setup
    item_id: setup-1
"""


def test_v1_lines_are_valid_v2(tmp_path: Path) -> None:
    path = tmp_path / "offers.jsonl"
    path.write_text('{"offer_id": "o1", "item_id": "tv-1", "title": "Deal", "value": 12.5}\n\n')
    catalog = load_offer_catalog(path, CATALOG)
    [offer] = catalog.offers
    assert (offer.offer_id, offer.item_id, offer.title, offer.value) == ("o1", "tv-1", "Deal", 12.5)
    assert offer.lever == 1.0 and offer.max_impressions is None and not offer.stages
    assert len(catalog.version) == 12


def test_yaml_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(YAML)
    catalog = load_offer_catalog(path, CATALOG)
    week, setup = catalog.offers
    assert week.category == "electronics.tv" and week.item_id is None
    assert week.stages == {"zmot", "fmot"} and week.channels == {"web", "ad"}
    assert week.max_impressions == 3 and week.lever == 1.5 and week.group == "product"
    assert week.starts_at == 1793491200.0 and week.ends_at == 1793491200.0 + 30 * 86400
    ok = {"q:tv": 0.5, "cat:electronics.tv": 0.5}
    assert week.eligible(ok)
    assert not week.eligible({**ok, "bought:cat:electronics.tv": 0.1})
    assert not week.eligible({"q:tv": 0.95, "cat:electronics.tv": 0.05})
    assert setup.title == "TV set-up"  # from the catalog
    path.write_text(YAML.replace("lever: 1.5", "lever: 2"))
    assert load_offer_catalog(path, CATALOG).version != catalog.version


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"item_id": "tv-1"}, ":2: offer_id: is required"),
        ({"offer_id": "a"}, ":2: item_id: give exactly one target"),
        ({"offer_id": "a", "item_id": "nope"}, ":2: item_id: 'nope' is not in the catalog"),
        ({"offer_id": "a", "category": "nope"}, ":2: category: no catalog item"),
        ({"offer_id": "a", "item_id": "tv-1", "value": "9"}, ":2: value: must be a number"),
        ({"offer_id": "a", "item_id": "tv-1", "lever": 0}, ":2: lever: must be > 0"),
        ({"offer_id": "a", "item_id": "tv-1", "stages": ["later"]}, ":2: stages: unknown"),
        ({"offer_id": "a", "item_id": "tv-1", "ends_at": "soon"}, ":2: ends_at: not an ISO"),
        ({"offer_id": "a", "item_id": "tv-1", "max_impressions": 0}, ":2: max_impressions"),
        ({"offer_id": "a", "item_id": "tv-1", "colour": "red"}, ":2: colour: unknown field"),
        (
            {"offer_id": "a", "item_id": "tv-1", "eligibility": [{"likes": "x"}]},
            ":2: eligibility[0]: unknown condition",
        ),
        ({"offer_id": "ok", "item_id": "tv-2"}, ":2: offer_id: duplicate 'ok'"),
    ],
)
def test_errors_name_line_and_field(tmp_path: Path, line: dict[str, object], message: str) -> None:
    path = tmp_path / "offers.jsonl"
    path.write_text(json.dumps({"offer_id": "ok", "item_id": "tv-1"}) + "\n" + json.dumps(line))
    with pytest.raises(CatalogError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_offer_catalog(path, CATALOG)


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(YAML.replace("lever: 1.5", "lever: -1"))
    with pytest.raises(CatalogError, match=r"offers.yaml:2: lever: must be > 0"):
        load_offer_catalog(path, CATALOG)
    path.write_text(YAML.replace("item_id: setup-1", "item_id: gone"))
    with pytest.raises(CatalogError, match=r"offers.yaml:18: item_id"):
        load_offer_catalog(path, CATALOG)


def test_placements_file(tmp_path: Path) -> None:
    path = tmp_path / "placements.yaml"
    path.write_text(
        "placements:\n  ad: {k: 1, channels: [ad], exploration: {share: 0.1}}\n"
        "  pdp: {context_weights: {support: 2}}\n"
    )
    placements = load_placements(path)
    assert placements.get("ad").k == 1 and placements.get("ad").exploration.share == 0.1
    assert placements.get("pdp").context_weight("support") == 2.0
    assert placements.get("pdp").context_weight("other") == 1.0
    assert placements.get("unknown").name == "default"
    assert placements.get("ad").exclude_seen is False
    path.write_text("placements:\n  ad: {exploration: {share: 2}}\n")
    with pytest.raises(ConfigError, match="exploration.share"):
        load_placements(path)
    path.write_text("placements:\n  fresh: {exclude_seen: true}\n")
    assert load_placements(path).get("fresh").exclude_seen is True
    path.write_text("placements:\n  fresh: {exclude_seen: 'yes'}\n")
    with pytest.raises(ConfigError, match="exclude_seen must be true or false"):
        load_placements(path)
    assert placements.get("ad").max_seen is None and placements.get("ad").seen_cap is None
    path.write_text("placements:\n  home: {max_seen: 2}\n  fresh: {exclude_seen: true}\n")
    assert load_placements(path).get("home").seen_cap == 2
    assert load_placements(path).get("fresh").seen_cap == 0
    for bad in ("-1", "two", "true", "1.5"):
        path.write_text(f"placements:\n  home: {{max_seen: {bad}}}\n")
        with pytest.raises(ConfigError, match="max_seen must be a whole number >= 0"):
            load_placements(path)
    path.write_text("placements:\n  home: {exclude_seen: true, max_seen: 2}\n")
    with pytest.raises(ConfigError, match="give one of them"):
        load_placements(path)


H = 3600.0


@pytest.mark.parametrize(
    ("weights", "purchases", "last_ts", "stage"),
    [
        ({}, {}, None, "stimulus"),
        ({"q:tv": 1.0, "kind:search": 0.1}, {}, 0.0, "zmot"),
        ({"item:a": 3.0, "kind:add_to_cart": 0.1}, {}, 0.0, "fmot"),
        ({"item:a": 4.0, "kind:purchase": 0.1}, {"a": 0.0}, 0.0, "smot"),
        ({"item:a": 1.0, "kind:review": 0.1}, {"a": -H}, 0.0, "umot"),
        ({"item:a": 1.0, "kind:review": 0.1}, {"a": 0.0}, 0.0, "smot"),  # bought after review
        ({"item:a": 1.0, "kind:add_to_cart": 0.1}, {}, -60 * 86400.0, "zmot"),  # stale cart
    ],
)
def test_journey_stage(
    weights: dict[str, float], purchases: dict[str, float], last_ts: float | None, stage: str
) -> None:
    now = 0.0
    profile = Profile(weights=weights, landmark=last_ts, last_ts=last_ts, purchases=purchases)
    assert stage_of(profile if weights else None, now, 14 * 86400.0, 72 * H) == stage
