"""The compact profile decoded by ``zmot_native.unpack_compact`` is the one the Python reference
(``codec._unpack_compact_python``) decodes: the same fields, the same floats bit for bit, the
dicts in the same order; and where the native decoder declines a value (truncated, unknown
ids, malformed or non-UTF-8 names, integers beyond 64 bits) the reference decodes it or
raises as before. Values drawn by hypothesis: every vocabulary state, names of any code
point, times whole milliseconds or not, offsets near the fence, and random damage."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.adapters import codec
from recommender.adapters.codec import UnknownIds, profile_from_value, split_value
from recommender.core import hybrid
from recommender.core.profile import Profile
from tests.adapters.test_redis_codec import FakeVocabulary, compact, generated, names

needs_native = pytest.mark.skipif(
    getattr(hybrid.NATIVE, "unpack_compact", None) is None,
    reason="zmot_native not built (test_native.py says so), or ZMOT_NATIVE=0",
)


def _bits(value: Any) -> Any:
    """``value`` with every float as its bytes (NaN payloads and -0.0 told apart)."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, dict):
        return [(_bits(k), _bits(v)) for k, v in value.items()]  # order too
    if isinstance(value, tuple | list):
        return [_bits(v) for v in value]
    return value


def _fields(profile: Profile) -> Any:
    return _bits([(name, getattr(profile, name)) for name in vars(profile)])


def _outcome(decode: Any, payload: bytes, vocab: FakeVocabulary, base: int) -> Any:
    try:
        return _fields(decode(payload, vocab, base))
    except Exception as exc:  # the same exception, or the same profile
        return ("raised", type(exc).__name__, getattr(exc, "ids", None))


profiles = st.builds(
    generated,
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
)


@needs_native
@settings(max_examples=400, deadline=None)
@given(profiles, st.integers(0, 1), st.sampled_from([10**9, 2, 0]), st.booleans())
def test_native_decoding_is_the_reference(
    profile: Profile, level: int, limit: int, share_search: bool
) -> None:
    vocab = FakeVocabulary(frozenset(profile.weights) if share_search else frozenset(), limit)
    value = compact(profile, vocab, level)
    decoded = profile_from_value(value, vocab)
    token, rest = split_value(value)
    payload = rest[1:] if rest[:1] == codec.PACKED_COMPACT else None
    if payload is not None:
        base = int(token.partition(b":")[2]) if token else 0
        native = _outcome(codec._unpack_compact, payload, vocab, base)
        assert native == _outcome(codec._unpack_compact_python, payload, vocab, base)
        if not token:  # (a fence position is set on the profile after the payload's fields)
            assert native == _fields(decoded)
    assert decoded == profile_from_value(value, vocab)


@needs_native
@settings(max_examples=400, deadline=None)
@given(profiles, st.data())
def test_damaged_values_decode_or_fail_as_the_reference(profile: Profile, data: Any) -> None:
    vocab = FakeVocabulary(limit=data.draw(st.sampled_from([10**9, 3])))
    payload = split_value(compact(profile, vocab, 0))[1][1:]
    damage = data.draw(st.sampled_from(["cut", "flip", "forget"]))
    if damage == "cut":
        payload = payload[: data.draw(st.integers(0, len(payload)))]
    elif damage == "flip" and payload:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload = payload[:at] + bytes([data.draw(st.integers(0, 255))]) + payload[at + 1 :]
    else:
        for id_ in data.draw(st.lists(st.sampled_from(sorted(vocab.names) or [1]), max_size=2)):
            vocab.names.pop(id_, None)
    base = data.draw(st.sampled_from([0, 7, 2**62, 2**70]))
    native = _outcome(codec._unpack_compact, payload, vocab, base)
    assert native == _outcome(codec._unpack_compact_python, payload, vocab, base)


@needs_native
def test_unknown_ids_still_raise_for_the_reader_to_load() -> None:
    vocab = FakeVocabulary()
    value = compact(Profile(weights={"cat:tv": 1.0}, purchases={"tv-1": 1e9}), vocab)
    with pytest.raises(UnknownIds):
        profile_from_value(value, FakeVocabulary())


def test_zmot_native_0_decodes_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    vocab = FakeVocabulary()
    profile = Profile(weights={"cat:tv": 0.5, "q:tv": 0.25}, touched={"tv-1": 1e9})
    value = compact(profile, vocab)
    native = profile_from_value(value, vocab)
    monkeypatch.setattr(hybrid, "NATIVE", None)
    assert _fields(profile_from_value(value, vocab)) == _fields(native)
