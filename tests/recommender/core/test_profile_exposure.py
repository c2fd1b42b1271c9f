"""Exposure kept in the profile: per-offer impressions and dismissals per event-time hour."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.adapters.codec import profile_from_hash, profile_to_hash
from recommender.core.events import Event
from recommender.core.profile import Profile, ProfileParams, apply_event
from recommender.core.replay import Profiler

H = 3600.0
T = 1_750_000_000.0 - 1_750_000_000.0 % H  # the start of an hour
DAY = 24 * H
PARAMS = ProfileParams(exposure_keep_s=7 * DAY)


def event(kind: str, offer: str, ts: float, **fields: Any) -> Event:
    return Event(user_id="u1", type=kind, offer_id=offer, **fields).with_ts(ts)  # type: ignore[arg-type]


def test_impressions_from_every_channel_count_for_every_channel() -> None:
    profiler = Profiler(params=PARAMS)
    profile = Profile()
    for i, channel in enumerate(["web", "web", "ad", "email"]):
        profiler.apply(profile, event("impression", "OFF-1", T + i * 60, channel=channel))
    assert profile.impressions("OFF-1", T + 3600, DAY) == 4
    assert profile.impressions("OFF-2", T + 3600, DAY) == 0
    assert profile.dismissals("OFF-1", T + 3600, DAY) == 0
    assert profile.weights == {}  # exposure adds no interest


def test_windows_are_whole_event_time_hours() -> None:
    profile = Profile()
    for ts in (T + 15 * 60, T + 45 * 60, T + H + 5 * 60):  # 10:15, 10:45, 11:05 (say)
        apply_event(profile, {}, ts, PARAMS, shown_offer="OFF-1")
    now = T + H + 30 * 60  # 11:30
    assert profile.impressions("OFF-1", now, H) == 3  # 10:30 is in the 10:00 hour: counted
    assert profile.impressions("OFF-1", now, 0.5 * H) == 1  # only the 11:00 hour
    assert profile.impressions("OFF-1", now + 2 * H, H) == 0
    assert profile.impressions("OFF-1", T - H, H) == 3  # later exposure (clock skew) counts


def test_dismissals_counted_apart_from_impressions() -> None:
    profiler = Profiler(params=PARAMS)
    profile = Profile()
    for i in range(3):
        profiler.apply(profile, event("dismiss", "OFF-9", T + i * DAY))
    profiler.apply(profile, event("click", "OFF-9", T + 3 * DAY))
    now = T + 3 * DAY
    assert profile.dismissals("OFF-9", now, 7 * DAY) == 3
    assert profile.dismissals("OFF-9", now, 2 * DAY) == 2
    assert profile.impressions("OFF-9", now, 7 * DAY) == 0


def test_exposure_older_than_the_longest_window_is_dropped() -> None:
    params = ProfileParams(exposure_keep_s=DAY)
    profile = Profile()
    apply_event(profile, {}, T, params, shown_offer="old", dismissed_offer="old")
    apply_event(profile, {}, T + DAY, params, shown_offer="new")  # cut-off: hour T/H exactly
    assert set(profile.shown) == {"old", "new"}
    apply_event(profile, {"q:tv": 1.0}, T + DAY + H, params)  # any later event moves it on
    assert profile.shown == {"new": {int((T + DAY) // H): 1}}
    assert profile.dismissed == {}
    apply_event(profile, {}, T, params, shown_offer="late")  # arrives too old: not kept
    assert "late" not in profile.shown


def test_exposure_memory_drops_the_oldest_hours_first() -> None:
    params = ProfileParams(exposure_keep_s=30 * DAY, exposure_memory=3)
    profile = Profile()
    for i, offer in enumerate(["a", "b", "c", "d"]):
        apply_event(profile, {}, T + i * H, params, shown_offer=offer)
    assert sorted(profile.shown) == ["b", "c", "d"]


def test_fence_skips_a_redelivered_impression() -> None:
    profile = Profile()
    assert apply_event(profile, {}, T, PARAMS, shown_offer="OFF-1", position=(3, 10))
    assert not apply_event(profile, {}, T, PARAMS, shown_offer="OFF-1", position=(3, 10))
    assert not apply_event(profile, {}, T, PARAMS, shown_offer="OFF-1", position=(3, 9))
    assert profile.impressions("OFF-1", T, H) == 1


exposure_events = st.lists(
    st.tuples(
        st.sampled_from(["impression", "dismiss", "click", "page_view"]),
        st.sampled_from(["O1", "O2", "O:3"]),
        st.floats(min_value=0, max_value=20 * DAY, allow_nan=False),
    ),
    min_size=1,
    max_size=60,
)


def _events(raw: list[tuple[str, str, float]]) -> list[Event]:
    out = []
    for kind, offer, dt in raw:
        if kind == "page_view":
            out.append(Event(user_id="u1", type="page_view", item_id=offer).with_ts(T + dt))
        else:
            out.append(event(kind, offer, T + dt))
    return out


@settings(max_examples=150, deadline=None)
@given(exposure_events, st.randoms(use_true_random=False))
def test_replaying_the_same_events_gives_the_same_exposure(
    raw: list[tuple[str, str, float]], rnd: Any
) -> None:
    profiler = Profiler(params=PARAMS)
    events = _events(raw)
    first, again, redelivered = Profile(), Profile(), Profile()
    for i, e in enumerate(events):
        profiler.apply(first, e, position=(0, i))
        profiler.apply(again, e, position=(0, i))
    # A redelivery of overlapping runs of messages (as after a crash) changes nothing.
    i = 0
    while i < len(events):
        start = max(0, i - rnd.randint(0, 5))
        end = min(len(events), i + rnd.randint(1, 5))
        for j in range(start, end):
            profiler.apply(redelivered, events[j], position=(0, j))
        i = end
    for profile in (again, redelivered, profile_from_hash(profile_to_hash(first))):
        assert profile.shown == first.shown
        assert profile.dismissed == first.dismissed
    # Exposure is a function of the events, not of their order (counts add, cut-off = newest).
    shuffled = list(events)
    rnd.shuffle(shuffled)
    reordered = Profile()
    for e in shuffled:
        profiler.apply(reordered, e)
    assert reordered.shown == first.shown and reordered.dismissed == first.dismissed
    # And it answers what a direct count over the kept window says.
    now = T + max(dt for _, _, dt in raw)
    for offer in ("O1", "O2", "O:3"):
        for window in (H, DAY, 7 * DAY):
            lo = (now - window) // H
            want = sum(
                1
                for kind, o, dt in raw
                if kind == "impression" and o == offer and (T + dt) // H >= lo
            )
            assert first.impressions(offer, now, window) == want
