"""``merged``: a known user's profile and its linked anonymous ones, as served."""

from __future__ import annotations

import pytest

from recommender.core.profile import Profile, merged

H = 3600.0


def test_weights_move_to_the_newest_landmark_and_add_up() -> None:
    known = Profile(weights={"q:tv": 1.0}, landmark=10 * H, last_ts=10 * H, partition=1, offset=7)
    anon = Profile(
        weights={"q:tv": 4.0, "cat:tv": 2.0}, landmark=8 * H, last_ts=9 * H, partition=0, offset=3
    )
    both = merged([known, anon], half_life_s=2 * H)
    # 2 h older with a 2 h half-life: worth half at the newer landmark.
    assert both.weights == pytest.approx({"q:tv": 1.0 + 2.0, "cat:tv": 1.0})
    assert both.landmark == 10 * H and both.last_ts == 10 * H
    assert (both.partition, both.offset) == (1, 7)  # the fence is the known profile's
    # Decayed to any time, the merge is the sum of the parts decayed to that time.
    at = 13 * H
    parts = [known.decayed(at, 2 * H), anon.decayed(at, 2 * H)]
    expected = {k: sum(p.get(k, 0.0) for p in parts) for k in ("q:tv", "cat:tv")}
    assert both.decayed(at, 2 * H) == pytest.approx(expected)


def test_purchases_touches_and_exposure_combine() -> None:
    known = Profile(
        weights={"a": 1.0},
        landmark=0.0,
        n_events=2,
        purchases={"tv-1": 5.0},
        touched={"tv-1": 5.0},
        shown={"o1": {1: 2}},
    )
    anon = Profile(
        weights={"b": 1.0},
        landmark=0.0,
        n_events=3,
        purchases={"tv-1": 9.0, "mount-1": 1.0},
        touched={"tv-1": 2.0},
        shown={"o1": {1: 1, 2: 4}},
        dismissed={"o2": {3: 1}},
    )
    both = merged([known, anon], half_life_s=H)
    assert both.n_events == 5
    assert both.purchases == {"tv-1": 9.0, "mount-1": 1.0}
    assert both.touched == {"tv-1": 5.0}
    assert both.shown == {"o1": {1: 3, 2: 4}} and both.dismissed == {"o2": {3: 1}}
    assert known.shown == {"o1": {1: 2}}  # the parts are not changed


def test_a_known_user_without_a_profile_of_their_own_gets_the_anonymous_one() -> None:
    anon = Profile(weights={"b": 2.0}, landmark=H, last_ts=H)
    assert merged([Profile(), anon], H).weights == {"b": 2.0}
