"""Per-arm figures: Wilson intervals and the plain verdict (exact answers)."""

from __future__ import annotations

import pytest

from recommender.core.attribution import DecisionRecord, Rate, verdict, wilson


def test_wilson_interval_known_values() -> None:
    assert wilson(0, 0) is None
    low, high = wilson(0, 10) or (None, None)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-5)
    assert wilson(50, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)


def test_verdict_says_better_worse_or_how_many_more() -> None:
    assert verdict(Rate(100, 10_000), Rate(200, 10_000)) == "B better"
    assert verdict(Rate(200, 10_000), Rate(100, 10_000), "challenger") == "challenger worse"
    # 1% vs 1.2% on 1,000 each: not yet; per arm (1.95996 + 0.84162)^2 = 7.84876 times
    # (0.0099 + 0.011856) / 0.002^2 = 5439, i.e. 42,690 in all: 41,690 more
    text = verdict(Rate(10, 1000), Rate(12, 1000))
    assert text == "no difference yet, need ~41690 more impressions per arm"
    assert verdict(Rate(0, 0), Rate(1, 10)) == "no data yet"


def test_decision_record_round_trips_and_finds_its_offer_values() -> None:
    record = DecisionRecord("d", "u", 1.5, "e", "a", {"O1": ("tv", 9.5), "O2": ("tv", 12.0)})
    assert DecisionRecord.from_json(record.to_json()) == record
    assert record.offer_of("tv") == 12.0 and record.offer_of("boots") is None
