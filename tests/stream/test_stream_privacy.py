"""The worker's privacy gate on its own (pure :class:`~stream.batch.Plan`): which events an
erasure or a refused consent keeps out of the profile, and how they are counted."""

from __future__ import annotations

from recommender.core.privacy import PrivacyState, person_hash
from recommender.core.replay import Profiler
from stream.batch import Plan
from tests.stream.test_stream_batch import T0, ev, rec

ERASED_AT = T0 / 1000 + 60  # one minute after T0


def plan_of(*events: tuple[str, int]) -> Plan:
    """A plan of page views: (user, event time in ms)."""
    records = [rec(n, ev(user, ts_ms=ts), key=user.encode()) for n, (user, ts) in enumerate(events)]
    return Plan.of(records)


def test_an_erasure_drops_the_events_up_to_its_time_and_keeps_later_ones() -> None:
    plan = plan_of(("u1", T0), ("u1", T0 + 60_000), ("u1", T0 + 61_000), ("u2", T0))
    states = [PrivacyState(erased_at=ERASED_AT), PrivacyState()]
    updates = plan.apply(Profiler(), ["u1", "u2"], [None, None], states)
    written = {user: profile for user, _, profile in updates}
    assert written["u1"].n_events == 1 and written["u1"].last_ts == (T0 + 61_000) / 1000
    assert written["u2"].n_events == 1
    assert plan.withheld == {"u1": ["erased", "erased"]}
    assert plan.stats(0).withheld == 2 and plan.stats(0).applied == 2


def test_without_consent_nothing_is_written_and_the_default_decides_for_who_never_chose() -> None:
    plan = plan_of(("refused", T0), ("silent", T0), ("agreed", T0))
    states = [PrivacyState(profiling=False), PrivacyState(), PrivacyState(profiling=True)]
    users = ["refused", "silent", "agreed"]
    granted = plan.apply(Profiler(), users, [None] * 3, states, default_consent=True)
    assert sorted(user for user, _, _ in granted) == ["agreed", "silent"]
    denied = plan.apply(Profiler(), users, [None] * 3, states, default_consent=False)
    assert [user for user, _, _ in denied] == ["agreed"]
    assert plan.withheld == {"refused": ["no_consent"], "silent": ["no_consent"]}


def test_the_privacy_record_is_keyed_by_a_hash_of_the_id() -> None:
    assert person_hash("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert PrivacyState(erased_at=10.0).withholds(10.0, True) == "erased"
    assert PrivacyState(erased_at=10.0).withholds(10.001, True) is None
