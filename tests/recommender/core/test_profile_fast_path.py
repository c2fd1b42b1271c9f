"""The worker's :func:`apply_event` against its plainly written oracle, on random streams.

Streams mix features from a small vocabulary (so weights tie and the top-N cut is often hit),
replays and out-of-order offsets, retried event ids, purchases, touches, impressions and
dismissals, timestamps jumping far enough to renormalise, and parameters that change between
events (a model swap shrinking ``top_n``). Both paths must give the same profile: the same
entries, floats to 1e-9, and the same answers.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.profile import Profile, ProfileParams, apply_event, apply_event_reference

H = 3600.0
NAMES = ["a", "b", "c", "d", "e", "f", "g", "h"]

event = st.fixed_dictionaries(
    {
        "features": st.dictionaries(
            st.sampled_from(NAMES), st.sampled_from([0.5, 1.0, 1.5, 2.0, 0.25]), max_size=4
        ),
        "dt": st.sampled_from([0.0, 1.0, 60.0, -30.0, H, 7 * H, 40 * H, 500 * H]),
        "purchased": st.none() | st.sampled_from(["i1", "i2", "i3", "i4"]),
        "touched": st.none() | st.sampled_from(["i1", "i2", "i3", "i4", "i5"]),
        "shown": st.none() | st.sampled_from(["o1", "o2"]),
        "dismissed": st.none() | st.sampled_from(["o1", "o2"]),
        "offset": st.none() | st.integers(0, 30),
        "partition": st.sampled_from([0, 0, 0, 1]),
        "event_id": st.none() | st.sampled_from(["e1", "e2", "e3", "e4"]),
        "top_n": st.sampled_from([3, 3, 3, 5, 1]),
    }
)


def same(fast: Profile, ref: Profile) -> None:
    assert set(fast.weights) == set(ref.weights)
    for name, value in ref.weights.items():
        assert math.isclose(fast.weights[name], value, rel_tol=1e-9, abs_tol=1e-300), name
    rest = ("landmark", "last_ts", "partition", "offset", "n_events", "purchases", "touched")
    for attribute in (*rest, "shown", "dismissed", "seen"):
        assert getattr(fast, attribute) == getattr(ref, attribute), attribute


@settings(max_examples=400, deadline=None)
@given(st.lists(event, min_size=1, max_size=60))
def test_fast_path_equals_the_reference(stream: list[dict[str, object]]) -> None:
    base = ProfileParams(
        half_life_s=H,
        top_n=3,
        purchase_memory=2,
        touch_memory=3,
        exposure_keep_s=24 * H,
        exposure_memory=3,
        dedupe_window_s=10 * H,
        dedupe_memory=2,
    )
    fast, ref = Profile(), Profile()
    ts = 1_750_000_000.0
    for e in stream:
        ts += e["dt"]  # type: ignore[operator]
        params = replace(base, top_n=e["top_n"])
        offset = e["offset"]
        kwargs = {
            "purchased_item": e["purchased"],
            "touched_item": e["touched"],
            "shown_offer": e["shown"],
            "dismissed_offer": e["dismissed"],
            "position": None if offset is None else (e["partition"], offset),
            "event_id": e["event_id"],
        }
        features = e["features"]
        done_fast = apply_event(fast, features, ts, params, **kwargs)  # type: ignore[arg-type]
        done_ref = apply_event_reference(ref, features, ts, params, **kwargs)  # type: ignore[arg-type]
        assert done_fast == done_ref
        same(fast, ref)


def test_a_tie_across_the_cut_keeps_the_smaller_names() -> None:
    params = ProfileParams(half_life_s=H, top_n=2)
    for apply in (apply_event, apply_event_reference):
        profile = Profile()
        apply(profile, {"z": 1.0, "y": 1.0, "x": 1.0, "big": 5.0}, 0.0, params)
        assert profile.weights == {"big": 5.0, "x": 1.0}
        apply(profile, {"w": 1.0}, 0.0, params)
        assert profile.weights == {"big": 5.0, "w": 1.0}
        apply(profile, {}, 0.0, replace(params, top_n=1))  # a featureless event still cuts
        assert profile.weights == {"big": 5.0}
