"""Profile math: forward decay, pruning and the offset fence (stored form: test_redis_codec)."""

from __future__ import annotations

import copy
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.profile import Profile, ProfileParams, apply_event, event_key

H = 3600.0
PARAMS = ProfileParams(half_life_s=H, top_n=1000, purchase_memory=3, touch_memory=3)

events_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=400 * H, allow_nan=False),  # ts
        st.sampled_from(["a", "b", "c", "d"]),
        st.floats(min_value=0.01, max_value=10, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_forward_decay_equals_direct_exponential_decay(
    events: list[tuple[float, str, float]],
) -> None:
    profile = Profile()
    for ts, name, weight in events:
        apply_event(profile, {name: weight}, ts, PARAMS)
    at = max(ts for ts, _, _ in events)
    expected: dict[str, float] = {}
    for ts, name, weight in events:
        expected[name] = expected.get(name, 0.0) + weight * 2 ** (-(at - ts) / H)
    got = profile.decayed(at, H)
    for name, value in expected.items():
        if value > 1e-200:  # far-away events underflow to nothing after renormalising
            assert math.isclose(got.get(name, 0.0), value, rel_tol=1e-9), (name, got, expected)


def test_half_life_halves() -> None:
    profile = Profile()
    apply_event(profile, {"q:tv": 2.0}, 1000.0, PARAMS)
    assert profile.decayed(1000.0 + H, H) == {"q:tv": 1.0}
    assert profile.decayed(1000.0 + 3 * H, H) == {"q:tv": 0.25}


def test_renormalising_keeps_weights_and_bounds_numbers() -> None:
    profile = Profile()
    apply_event(profile, {"x": 1.0}, 0.0, PARAMS)
    apply_event(profile, {"y": 1.0}, 100 * H, PARAMS)  # 100 half-lives later: rescaled
    assert profile.landmark == 100 * H
    assert max(profile.weights.values()) <= 1.0
    assert math.isclose(profile.decayed(100 * H, H)["x"], 2.0**-100, rel_tol=1e-12)


def test_pruning_keeps_top_n_by_weight_then_name() -> None:
    params = ProfileParams(half_life_s=H, top_n=2)
    profile = Profile()
    apply_event(profile, {"low": 1.0, "high": 3.0, "mid-b": 2.0, "mid-a": 2.0}, 0.0, params)
    assert profile.weights == {"high": 3.0, "mid-a": 2.0}


def test_fence_skips_replayed_offsets_but_not_new_partitions() -> None:
    profile = Profile()
    assert apply_event(profile, {"a": 1.0}, 0.0, PARAMS, position=(0, 5))
    before = copy.deepcopy(profile)
    assert not apply_event(profile, {"a": 1.0}, 0.0, PARAMS, position=(0, 5))
    assert not apply_event(profile, {"a": 1.0}, 0.0, PARAMS, position=(0, 4))
    assert profile == before
    assert apply_event(profile, {"a": 1.0}, 1.0, PARAMS, position=(0, 6))
    assert apply_event(profile, {"a": 1.0}, 2.0, PARAMS, position=(1, 0))
    assert profile.n_events == 3


def test_purchases_are_bounded_to_the_most_recent() -> None:
    profile = Profile()
    for i in range(5):
        apply_event(profile, {}, float(i), PARAMS, purchased_item=f"i{i}")
    assert profile.purchases == {"i2": 2.0, "i3": 3.0, "i4": 4.0}


def test_touches_keep_the_latest_time_of_the_most_recently_touched_items() -> None:
    profile = Profile()
    for ts, item in [(1.0, "a"), (2.0, "b"), (3.0, "c"), (4.0, "a"), (0.5, "a"), (5.0, "d")]:
        apply_event(profile, {}, ts, PARAMS, touched_item=item)
    # "a" keeps 4.0 (a late-arriving older touch does not move it back); "b" (2.0) is dropped
    assert profile.touched == {"c": 3.0, "a": 4.0, "d": 5.0}
    apply_event(profile, {}, 6.0, PARAMS, touched_item=None)
    assert profile.touched == {"c": 3.0, "a": 4.0, "d": 5.0}


@settings(max_examples=100, deadline=None)
@given(st.permutations([(float(i), f"i{i % 4}") for i in range(10)]))
def test_touches_do_not_depend_on_the_arrival_order(touches: list[tuple[float, str]]) -> None:
    """What a replay rebuilds does not depend on how its events were interleaved."""
    profile = Profile()
    for ts, item in touches:
        apply_event(profile, {}, ts, PARAMS, touched_item=item)
    assert profile.touched == {"i1": 9.0, "i0": 8.0, "i3": 7.0}


def test_an_event_id_applied_before_counts_once_and_stays_a_duplicate() -> None:
    params = ProfileParams(half_life_s=H, dedupe_window_s=24 * H, dedupe_memory=10)
    profile = Profile()
    assert apply_event(profile, {"a": 1.0}, 0.0, params, position=(0, 1), event_id="x")
    # The same event sent again (a client's retry): another message, same id.
    assert not apply_event(profile, {"a": 1.0}, 0.0, params, position=(0, 2), event_id="x")
    assert apply_event(profile, {"a": 1.0}, 1.0, params, position=(0, 3), event_id="y")
    assert profile.n_events == 2 and profile.offset == 3
    # Read again from the start, the first message is a replay and the retry a duplicate.
    assert not profile.is_duplicate("x", 1) and profile.is_duplicate("x", 2)
    # Offline, any repeat of an id is a duplicate.
    offline = Profile()
    assert apply_event(offline, {"a": 1.0}, 0.0, params, event_id="x")
    assert not apply_event(offline, {"a": 1.0}, 0.0, params, event_id="x")


def test_event_ids_are_forgotten_after_the_window_and_beyond_the_memory() -> None:
    params = ProfileParams(half_life_s=H, dedupe_window_s=24 * H, dedupe_memory=3)
    profile = Profile()
    for i in range(5):
        apply_event(profile, {"a": 1.0}, i * H, params, event_id=f"e{i}")
    # the memory keeps the newest
    assert sorted(profile.seen) == sorted(map(event_key, ["e2", "e3", "e4"]))
    apply_event(profile, {"a": 1.0}, 27 * H, params, event_id="late")
    # e2 is 25 h older than the newest
    assert sorted(profile.seen) == sorted(map(event_key, ["e3", "e4", "late"]))
    assert apply_event(profile, {"a": 1.0}, 0.0, params, event_id="e0")  # forgotten: counts


@settings(max_examples=100, deadline=None)
@given(events_strategy, st.floats(0, 1e6), st.sampled_from(["a", "d", "nope"]))
def test_one_decayed_weight_is_that_of_the_decayed_profile(
    events: list[tuple[float, str, float]], later: float, name: str
) -> None:
    profile = Profile()
    assert profile.decayed_weight("a", 0.0, H) == 0.0  # no landmark yet
    for ts, feature, weight in events:
        apply_event(profile, {feature: weight}, ts, PARAMS)
    at = max(ts for ts, _, _ in events) + later
    assert profile.decayed_weight(name, at, H) == profile.decayed(at, H).get(name, 0.0)
