"""The Redis form of profiles and counters, byte for byte: the one place tests see raw Redis.

Every other test goes through the stores; these pin the stored fields and bytes, so a change of
the wire format (which running workers and APIs share) shows here.
"""

from __future__ import annotations

import json
import math
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recommender.adapters.codec import (
    OFFSET_FIELD,
    POSITION_FIELD,
    CorruptProfileError,
    UnassignedNames,
    UnknownIds,
    counter_field,
    deflate,
    narrowed,
    offset_token,
    parse_offset,
    profile_from_hash,
    profile_from_value,
    profile_to_compact,
    profile_to_hash,
    profile_to_value,
    sum_counters,
)
from recommender.adapters.feedback_store import ADD_IF_FENCE, FeedbackStore
from recommender.adapters.redis_store import REPLACE_IF_FENCE, ProfileStore
from recommender.core.feedback import (
    ItemRating,
    OfferStats,
    increments,
    item_ratings,
    offer_counters,
    offer_stats,
    rating_counters,
)
from recommender.core.profile import Profile, ProfileParams, apply_event, event_key
from recommender.core.replay import Profiler
from stream.batch import process_batch
from stream.dead_letters import DeadLetter
from stream.records import Record
from tests.recommender.core.test_feedback import EVENTS
from tests.recommender.core.test_profile import PARAMS, events_strategy

H = 3600.0
T = 1_750_000_000.0 - 1_750_000_000.0 % H  # the start of an hour


# --- packed profile value -----------------------------------------------------------------


def test_packed_value_of_the_workers_before_exact_bytes() -> None:
    """Format B / Z, written by the workers before the compact format: still read exactly
    (an event id becomes its digest)."""
    profile = Profile()
    apply_event(profile, {"q:tv": 1.5}, T - H, PARAMS, position=(2, 41), purchased_item="SKU-1")
    apply_event(profile, {}, T, PARAMS, position=(2, 42), shown_offer="O:1", event_id="ev")
    assert profile.seen == {event_key("ev"): (T, 42)}
    hour = int(T // H)
    payload = (
        struct.pack("<BddqIIIIII", 3, T - H, T, 2, 1, 1, 0, 1, 0, 1)
        + struct.pack("<dd", 1.5, T - H)
        + struct.pack("<qq", hour, 1)
        + struct.pack("<dq", T, 42)
        + b"q:tv\xffSKU-1\xffO:1\xffev"
    )
    as_before = replace(profile, seen={"ev": (T, 42)})  # type: ignore[dict-item]
    assert profile_to_value(as_before, level=0) == b"2:42|B" + payload
    deflated = profile_to_value(as_before, level=1)
    assert deflated == b"2:42|Z" + deflate(payload, 1)
    assert zlib.decompress(deflated[6:], -15) == payload
    for value in (b"2:42|B" + payload, deflated, profile_to_value(as_before, 9)):
        assert profile_from_value(value) == profile
    assert profile_to_value(Profile(), level=0) == b"|B" + struct.pack(
        "<BddqIIIIII", 0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, 0
    )
    assert profile_from_value(profile_to_value(Profile())) == Profile()


class FakeVocabulary:
    """The vocabulary as a dict (the codec is pure; the Redis one is tested below)."""

    def __init__(self, shared_text: frozenset[str] = frozenset(), limit: int = 10**9) -> None:
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.full = False
        self.inline: dict[str, bytes] = {}
        self.shared_text = shared_text
        self.limit = limit

    def assign(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self.ids:
                continue
            if len(self.ids) >= self.limit:
                self.full = True
                continue
            self.ids[name] = len(self.ids) + 1
            self.names[len(self.ids)] = name


def compact(profile: Profile, vocab: FakeVocabulary, level: int = 0) -> bytes:
    try:
        return profile_to_compact(profile, vocab, level)
    except UnassignedNames as exc:
        vocab.assign(exc.names)
        return profile_to_compact(profile, vocab, level)


def test_compact_value_exact_bytes() -> None:
    profile = Profile()
    apply_event(profile, {"q:tv": 1.5, "cat:tv": 0.5}, T - H, PARAMS, position=(2, 41),
                purchased_item="SKU-1", event_id="e1")  # fmt: skip
    apply_event(profile, {}, T, PARAMS, position=(2, 42), shown_offer="O:1", event_id="ev")
    vocab = FakeVocabulary()
    value = compact(profile, vocab)
    # Search text stays inline; the rest is in the vocabulary, items and offers namespaced.
    assert vocab.ids == {"cat:tv": 1, "item:SKU-1": 2, "offer:O:1": 3}
    hour = int(T // H)
    payload = (
        struct.pack("<BBddI", 1 | 2 | 4 | 8, 1 | 1 << 4, T - H, T, 2)
        + struct.pack("<6B", 2, 1, 0, 1, 0, 2)
        + struct.pack("<2f", 1.5, 0.5)
        + struct.pack("<4B", 0, 1, 2, 3)  # q:tv inline, cat:tv, item:SKU-1, offer:O:1
        + struct.pack("<qq", hour, 1)
        + struct.pack("<2Q", event_key("e1"), event_key("ev"))
        + struct.pack("<3I", 3_600_000, 3_600_000, 0)  # ms before the last event
        + struct.pack("<2B", 2, 1)  # offsets 41, 42 as 42 - offset + 1
        + b"\x01tv"
    )
    assert value == b"2:42|C" + payload
    assert profile_from_value(value, vocab) == profile
    deflated = compact(profile, vocab, 1)
    assert deflated == b"2:42|D" + deflate(payload, 1)
    assert profile_from_value(deflated, vocab) == profile
    with pytest.raises(UnknownIds) as unknown:
        profile_from_value(value, FakeVocabulary())
    assert unknown.value.ids == {1, 2, 3}
    # Shared search words (the catalog's) go into the vocabulary too.
    shared = FakeVocabulary(frozenset({"q:tv"}))
    assert profile_from_value(compact(profile, shared), shared) == profile
    assert "q:tv" in shared.ids
    # A full vocabulary: new names inline.
    full = FakeVocabulary(limit=1)
    assert profile_from_value(compact(profile, full), full) == profile
    assert full.full and len(full.ids) == 1


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"no fence", "fence token"),
        (b"1:2|Xabc", "unknown packed profile format"),
        (b"1:2|Zabc", "does not inflate"),
        (b"1:2|Babc", "truncated or malformed"),
        (
            b"|B" + struct.pack("<BddqIIIIII", 0, 0.0, 0.0, 0, 2, 0, 0, 0, 0, 0) + b"\0" * 16,
            "names",
        ),
        (b"1:2|Cabc", "truncated or malformed"),
        (b"1:2|Dabc", "does not inflate"),
        (
            b"|C" + struct.pack("<BBddI6B", 0, 1, 0.0, 0.0, 0, 2, 0, 0, 0, 0, 0) + b"\0" * 10,
            "inline names",
        ),
        (
            b"|C" + struct.pack("<BBddI6B", 0, 1, 0.0, 0.0, 0, 1, 0, 0, 0, 0, 0) + b"\0" * 5,
            "inline name without",
        ),
    ],
)
def test_a_corrupt_value_is_a_clear_error(value: bytes, why: str) -> None:
    with pytest.raises(CorruptProfileError, match=why):
        profile_from_value(value, FakeVocabulary())


def generated(
    weights: dict[str, float],
    times: dict[str, float],
    shown: dict[str, dict[int, int]],
    seen: dict[Any, tuple[float, int | None]],
    position: tuple[int, int] | None,
) -> Profile:
    """A profile of the parts Hypothesis drew (exposure twice: shown, and dismissed under
    the reversed offer ids)."""
    return Profile(
        weights=weights,
        purchases=times,
        touched=dict(reversed(times.items())),
        shown={o: h for o, h in shown.items() if h},
        dismissed={o[::-1]: h for o, h in shown.items() if h},
        seen=seen,
        landmark=min(times.values(), default=None),
        last_ts=max(times.values(), default=None),
        partition=None if position is None else position[0],
        offset=None if position is None else position[1],
        n_events=len(weights),
    )


names = st.text(
    st.characters(codec=None, exclude_categories=()), min_size=0, max_size=12
)  # any code point, lone surrogates and U+FFFF included


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(names, st.floats(allow_nan=False), max_size=8),
    st.dictionaries(names, st.floats(1e9, 4e9), max_size=4),
    st.dictionaries(
        names, st.dictionaries(st.integers(0, 2**40), st.integers(1, 2**40), max_size=3), max_size=3
    ),
    st.dictionaries(
        names, st.tuples(st.floats(1e9, 4e9), st.none() | st.integers(0, 2**62)), max_size=4
    ),
    st.none() | st.tuples(st.integers(0, 2**31), st.integers(0, 2**62)),
    st.integers(0, 9),
)
def test_packed_value_round_trips_exactly(
    weights: dict[str, float],
    times: dict[str, float],
    shown: dict[str, dict[int, int]],
    seen: dict[str, tuple[float, int | None]],
    position: tuple[int, int] | None,
    level: int,
) -> None:
    profile = generated(weights, times, shown, seen, position)
    # Written with event ids (the workers before), read back with their digests.
    read = profile_from_value(profile_to_value(profile, level))
    assert read == replace(profile, seen={event_key(k): v for k, v in seen.items()})


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(names, st.floats(allow_nan=False), max_size=8),
    st.dictionaries(
        names,
        st.floats(1e9, 4e9) | st.integers(10**9, 4 * 10**9).map(lambda ms: ms / 1000),
        max_size=4,
    ),
    st.dictionaries(
        names, st.dictionaries(st.integers(0, 2**40), st.integers(1, 2**40), max_size=3), max_size=3
    ),
    st.dictionaries(
        st.integers(0, 2**64 - 1),
        st.tuples(st.floats(1e9, 4e9), st.none() | st.integers(0, 2**62)),
        max_size=4,
    ),
    st.none() | st.tuples(st.integers(0, 2**31), st.integers(0, 2**62)),
    st.integers(0, 2),
    st.sampled_from([10**9, 2, 0]),
    st.booleans(),
)
# an offset just past the fence (none here: 0) once came back as offline (0 stands for it)
@example({}, {}, {}, {0: (1e9, 1)}, None, 0, 10**9, False)
@example({}, {}, {}, {0: (1e9, 8)}, (0, 7), 0, 10**9, False)
def test_compact_value_round_trips_exactly_but_for_single_precision_weights(
    weights: dict[str, float],
    times: dict[str, float],
    shown: dict[str, dict[int, int]],
    seen: dict[int, tuple[float, int | None]],
    position: tuple[int, int] | None,
    level: int,
    limit: int,
    share_search: bool,
) -> None:
    """Names of any code point (lone surrogates too), any vocabulary state, times whole ms
    or not, offsets near the fence or not: the profile comes back exactly, the weights as
    :func:`narrowed` (single precision unless a weight is beyond its range) gives them."""
    profile = generated(weights, times, shown, seen, position)
    vocab = FakeVocabulary(frozenset(weights) if share_search else frozenset(), limit)
    decoded = profile_from_value(compact(profile, vocab, level), vocab)
    assert decoded == replace(profile, weights=narrowed(weights))
    for name, value in weights.items():
        assert decoded.weights[name] == value or math.isclose(
            decoded.weights[name], value, rel_tol=6e-8, abs_tol=1.5e-45
        )
    assert list(decoded.weights) == list(weights)  # the order (features first seen) too


# --- profile hash (the old form: still read, and rewritten packed) -------------------------


def test_stored_form_exact_fields() -> None:
    profile = Profile()
    apply_event(
        profile, {"q:tv": 1.5}, 1_700_000_000.0, PARAMS, position=(2, 41), purchased_item="SKU-1"
    )
    assert profile_to_hash(profile) == {
        "f:q:tv": "1.5",
        "b:SKU-1": "1700000000.0",
        "_L": "1700000000.0",
        "_t": "1700000000.0",
        "_pos": "2:41",
        "_n": "1",
    }


def test_stored_form_of_exposure_exact_fields() -> None:
    params = ProfileParams(exposure_keep_s=7 * 24 * H)
    profile = Profile()
    apply_event(profile, {}, T, params, shown_offer="OFF:1", position=(0, 7))
    apply_event(profile, {}, T + 1, params, shown_offer="OFF:1", position=(0, 8))
    apply_event(profile, {}, T + H, params, dismissed_offer="OFF:1", position=(0, 9))
    hour = int(T // H)
    assert profile_to_hash(profile) == {
        f"x:OFF:1:{hour}": "2",
        f"d:OFF:1:{hour + 1}": "1",
        "_L": repr(T),
        "_t": repr(T + H),
        "_pos": "0:9",
        "_n": "3",
    }
    assert profile_from_hash(profile_to_hash(profile)) == profile


def test_stored_form_of_event_ids_exact_fields() -> None:
    """The hash of the workers before kept event ids as text: read as their digests."""
    profile = Profile()
    apply_event(profile, {}, T, PARAMS, position=(2, 7), event_id="ev:1")
    apply_event(profile, {}, T + 1, PARAMS, event_id="ev-2")
    assert profile.seen == {event_key("ev:1"): (T, 7), event_key("ev-2"): (T + 1, None)}
    as_before = replace(profile, seen={"ev:1": (T, 7), "ev-2": (T + 1, None)})  # type: ignore[dict-item]
    assert profile_to_hash(as_before) == {
        "e:ev:1": f"7:{T!r}",
        "e:ev-2": f":{T + 1!r}",
        "_L": repr(T),
        "_t": repr(T + 1),
        "_pos": "2:7",
        "_n": "2",
    }
    assert profile_from_hash(profile_to_hash(as_before)) == profile


@settings(max_examples=100, deadline=None)
@given(events_strategy)
def test_stored_form_round_trips_exactly(events: list[tuple[float, str, float]]) -> None:
    profile = Profile()
    for i, (ts, name, weight) in enumerate(events):
        apply_event(
            profile, {f"f:{name}:ü": weight}, ts, PARAMS, position=(1, i), purchased_item=name
        )
    stored = {k.encode(): v.encode() for k, v in profile_to_hash(profile).items()}
    assert profile_from_hash(stored) == profile


# --- counter hash -------------------------------------------------------------------------


def test_counter_fields_exact() -> None:
    assert {counter_field(key): n for key, n in increments(EVENTS).items()} == {
        "i:O1": 2,
        "c:O1": 1,
        "d:O:2": 1,
        "rn:SKU-1": 2,
        "rs:SKU-1": 7,
    }
    assert tuple(map(counter_field, offer_counters("O1"))) == ("i:O1", "c:O1", "d:O1")
    assert tuple(map(counter_field, rating_counters("SKU-1"))) == ("rn:SKU-1", "rs:SKU-1")
    assert (offset_token(None), offset_token(12)) == ("", "12")
    assert (parse_offset(None), parse_offset(b""), parse_offset(b"12")) == (None, None, 12)


def test_sums_over_partitions() -> None:
    keys = [*offer_counters("O1"), *offer_counters("O2")]
    totals = sum_counters(
        keys, [[b"2", b"1", None, None, None, None], [b"3", None, b"1", None, None, b"4"]]
    )
    stats = offer_stats(["O1", "O2"], totals)
    assert stats == {"O1": OfferStats(5, 1, 1), "O2": OfferStats(0, 0, 4)}
    assert offer_stats(["O1"], sum_counters(list(offer_counters("O1")), [])) == {"O1": OfferStats()}
    keys = [*rating_counters("A"), *rating_counters("B")]
    totals = sum_counters(keys, [[b"1", b"5", None, None], [b"2", b"7", None, None]])
    assert item_ratings(["A", "B"], totals) == {"A": ItemRating(3, 4.0), "B": ItemRating(0, 0.0)}


def test_scripts_fence_on_the_codec_fields() -> None:
    assert f"redis.call('HGET', key, '{POSITION_FIELD}')" in REPLACE_IF_FENCE
    assert f"redis.call('HGET', KEYS[1], '{OFFSET_FIELD}')" in ADD_IF_FENCE
    assert f"redis.call('HSET', KEYS[1], '{OFFSET_FIELD}', ARGV[2])" in ADD_IF_FENCE
    assert "$" not in REPLACE_IF_FENCE + ADD_IF_FENCE


# --- bytes in a real Redis ----------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    return f"zmot:codec-{uuid.uuid4().hex[:10]}:"


async def raw_hashes(client: aioredis.Redis, prefix: str) -> dict[bytes, Any]:
    """Every key under ``prefix`` as Redis holds it (a hash's fields, a string's bytes)."""
    keys = sorted([k async for k in client.scan_iter(match=f"{prefix}*")])
    return {
        k: await (client.hgetall(k) if await client.type(k) == b"hash" else client.get(k))
        for k in keys
    }


async def drop(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


@pytest.mark.integration
async def test_put_many_stores_the_exact_bytes_of_the_codec(
    client: aioredis.Redis, prefix: str
) -> None:
    """Redis holds the codec's exact bytes, with the TTL set."""
    store = ProfileStore(client, prefix, ttl_s=3600)
    try:
        odd = ["ü日本😀", 'q"uo\\te', "nul\x00ctl\x01\x1f\x7f", "\u2028", "1e5", "", "a:b:c"]
        profile = Profile(
            weights={f"q:{name}": 0.1 * (i + 1) for i, name in enumerate(odd)} | {"big": 1.7e308},
            purchases={"item-ü": 1_750_000_000.123456789},
            touched={"item-ü": 1_750_000_000.5, "t:x": 1_749_999_000.0},
            shown={"offer:é": {486_111: 3}},
            landmark=1_750_000_000.5,
            last_ts=1_750_000_001.25,
            partition=2,
            offset=41,
            n_events=9,
        )
        many = Profile(weights={f"f{i}": i / 7 for i in range(1500)}, partition=0, offset=1)
        assert await store.put_many([("odd", None, profile), ("many", None, many)]) == []
        for user, written in (("odd", profile), ("many", many)):
            assert await store.client.get(store.key(user)) == profile_to_compact(
                written, store.vocab
            )
            assert await store.get(user) == replace(written, weights=narrowed(written.weights))
        assert (await store.get("odd")).weights == profile.weights  # type: ignore[union-attr]  # 1.7e308: doubles kept
        assert 0 < await client.pttl(store.key("odd")) <= 3_600_000
        assert await store.put_many([("odd", (0, 1), profile)]) == ["odd"]  # fence still checked
    finally:
        await drop(client, prefix)


@pytest.mark.integration
async def test_profiles_stored_as_hashes_are_read_fenced_and_rewritten_packed(
    client: aioredis.Redis, prefix: str
) -> None:
    """A store written by older workers (one hash per profile, or a packed value of format
    B) keeps working, and ``migrate`` rewrites it compact."""
    store = ProfileStore(client, prefix, ttl_s=3600)
    old = Profile(weights={"q:tv": 1.5}, landmark=T, last_ts=T, partition=1, offset=7, n_events=1)
    other = Profile(weights={"q:x": 2.0}, landmark=T, last_ts=T, partition=0, offset=3)
    try:
        for user, profile in (("old", old), ("other", other), ("third", other)):
            await client.hset(store.key(user), mapping=profile_to_hash(profile))
        await client.set(store.key("packed"), profile_to_value(other))
        assert await store.get("packed") == other
        await store.put_many([("new", None, other)])
        assert await store.get_many(["old", "nobody", "new", "other"]) == [old, None, other, other]
        assert await store.put_many([("old", (1, 6), old)]) == ["old"]  # its _pos is the fence
        newer = Profile(weights={"q:tv": 3.0}, landmark=T, last_ts=T, partition=1, offset=8)
        assert await store.put_many([("old", (1, 7), newer)]) == []
        assert await client.type(store.key("old")) == b"string"
        assert await store.get("old") == newer
        assert await store.migrate(count=1) == 3  # "other", "third" and "packed"
        assert await store.migrate() == 0
        for user in ("other", "third", "packed"):
            assert await client.get(store.key(user)) == profile_to_compact(other, store.vocab)
    finally:
        await drop(client, prefix)


def rec(partition: int, offset: int, user: str, kind: str, **fields: Any) -> Record:
    data = {"user_id": user, "type": kind, "ts": int(T * 1000), **fields}
    return Record(
        "zmot.events.codec", partition, offset, None, user.encode(), json.dumps(data).encode()
    )


async def no_letters(letters: Sequence[DeadLetter]) -> None:
    pass


@pytest.mark.integration
async def test_a_replayed_batch_leaves_every_stored_byte_as_it_was(
    client: aioredis.Redis, prefix: str
) -> None:
    store = ProfileStore(client, prefix, ttl_s=3600)
    feedback = FeedbackStore(client, prefix, 2)
    records = [
        rec(0, 0, "u1", "impression", offer_id="O1", channel="web"),
        rec(0, 1, "u1", "click", offer_id="O1"),
        rec(1, 0, "u2", "review", item_id="SKU-1", rating=5),
        rec(1, 1, "u2", "search", query="tv repair"),
        rec(0, 2, "u1", "page_view", item_id="SKU-1"),
    ]

    async def batch() -> None:
        await process_batch(
            records, profiler=Profiler(), store=store, dead_letter=no_letters, feedback=feedback
        )

    try:
        await batch()
        before = await raw_hashes(client, prefix)
        await batch()
        assert await raw_hashes(client, prefix) == before
        assert before[feedback.key(0).encode()] == {b"i:O1": b"1", b"c:O1": b"1", b"_off": b"2"}
        assert before[feedback.key(1).encode()] == {
            b"rn:SKU-1": b"1",
            b"rs:SKU-1": b"5",
            b"_off": b"1",
        }
        u1 = await store.get("u1")
        assert u1 is not None
        assert before[store.key("u1").encode()] == profile_to_compact(u1, store.vocab)
    finally:
        await drop(client, prefix)


@pytest.mark.integration
async def test_the_worker_cache_serves_only_the_exact_value_redis_holds(
    client: aioredis.Redis, prefix: str
) -> None:
    store = ProfileStore(client, prefix, ttl_s=3600, cache_size=2)
    other = ProfileStore(client, prefix, ttl_s=3600)
    first = Profile(weights={"q:a": 1.0}, landmark=T, last_ts=T, partition=0, offset=1)
    try:
        assert await store.put_many([("u", None, first)]) == []
        (read,) = await store.get_many(["u"])
        assert read is first and store.cache_hits == 1  # kept, taken out by the read
        assert await store.get("u") == first and store.cache_hits == 1  # decoded: not kept now
        # Another writer changes the profile: the kept one is not served.
        assert await store.put_many([("u", (0, 1), first)]) == []
        changed = Profile(weights={"q:b": 2.0}, landmark=T, last_ts=T, partition=0, offset=2)
        assert await other.put_many([("u", (0, 1), changed)]) == []
        assert await store.get("u") == changed and store.cache_hits == 1
        # An erased (deleted) profile is gone, whatever was kept.
        assert await store.put_many([("u", (0, 2), first)]) == []
        await client.delete(store.key("u"))
        assert await store.get("u") is None
        # At most cache_size kept, the longest unread first out.
        for i, user in enumerate(["a", "b", "c"]):
            p = Profile(weights={"q": float(i)}, landmark=T, last_ts=T, partition=1, offset=i)
            assert await store.put_many([(user, None, p)]) == []
        hits = store.cache_hits
        await store.get_many(["a", "b", "c"])
        assert store.cache_hits == hits + 2
    finally:
        await drop(client, prefix)
