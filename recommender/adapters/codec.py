"""The Redis form of profiles and feedback counters: hash fields, fence values.

Everything that knows how a :class:`~recommender.core.profile.Profile` or a feedback counter
looks in Redis is here, so the core stays free of storage names and the Lua scripts are built
from the same constants (:func:`lua`): a renamed field cannot leave a script behind.

Profile, ``<prefix>profile:{tag}<user_id>`` (key names: :mod:`.keys`): ONE string value,

    <fence>|<format byte><payload>

``<fence>`` is ``partition:offset`` of the last applied message ('' offline), in clear so the
fenced write's Lua script reads it with ``GETRANGE`` without decoding the rest. The format
byte says how the payload is stored. Writers write ``C`` (compact, :func:`profile_to_compact`)
or, with a zlib level above 0 (:data:`PACK_LEVEL`), ``D``: the same deflated (raw deflate, a
2 KiB window: :func:`deflate`). Readers also read the formats before, ``B`` / ``Z``
(:func:`profile_to_value`) and the hash further down, and the next write replaces them.

The compact payload: names are ids of the shared feature vocabulary
(:mod:`recommender.adapters.vocabulary`: one id per name for every process, cached), except
search text that is not the catalog's own words (:func:`is_shareable`), which stays inline;
event ids are 64-bit digests (:func:`~recommender.core.profile.event_key`); numbers are
little-endian arrays:

========================  =========================================================
header ``<BBddI``         flags (1 landmark set, 2 last time set, 4 times in ms, 8
                          offsets relative, 16 / 32 counts as ``I`` / ``H`` (else
                          ``B``), 64 weights as doubles), widths (low nibble: bytes
                          per name id, high nibble: per offset), landmark, last event
                          time, events applied
counts ``6B/6H/6I``       features, purchases, touches, impression and dismissal
                          entries, event ids
``f`` x features          stored (landmark-scaled) weights in single precision (``d``
                          if one is beyond its range: flag 64)
ids x names               a vocabulary id (1, 2, 3 or 4 bytes, the smallest that holds
                          the largest) of each feature, purchased and touched item
                          (``item:<id>``) and exposure entry's offer (``offer:<id>``);
                          0: the next inline name
``q`` x 2 x impr., dism.  hour and count of each (offer, hour), as in format ``B``
``Q`` x ids               the digests of the remembered event ids
``I`` x times             purchase, touch and event id times as milliseconds before
                          the last event time (flag 4; ``d`` each otherwise: a time
                          that is not a whole ms, or more than 49 days back)
offsets x ids             offset of the message that applied each id as ``fence - offset
                          + 1`` (0: offline) in the narrowest width (flag 8; ``q``
                          with -1 offline otherwise)
inline names              UTF-8, separated by ``0xFF``, each after a code byte: 1 for
                          ``q:``, 2 for ``qp:``, 0 for a name written in full
========================  =========================================================

Exact but for the weights: single precision keeps 24 significant bits (relative error below
6e-8 per write; the writer's cache holds the narrowed weights, so a profile never differs
from what a read of Redis gives). A 64-feature demo profile takes about 860 bytes of Redis
memory this way against 2,600 in format ``B`` (BENCHMARKS.md, "Redis memory").

Format ``B`` (the workers before; deflated ``Z``): a fixed header, the numbers as
little-endian arrays, then every name (features, items, offers, event ids as text) as UTF-8
separated by the byte ``0xFF``:

======================  ===========================================================
header ``<BddqIIIIII``  flags (1: landmark set, 2: last time set), landmark, last event
                        time, events applied, then how many features, purchases,
                        touches, impression and dismissal entries, event ids
``d`` x features        stored (landmark-scaled) weights
``d`` x purchases       purchase times
``d`` x touches         time of the last item event on each (the newest ``touch_memory``)
``q`` x 2 x impr.       hour (epoch seconds // 3600) and count of each (offer, hour)
``q`` x 2 x dism.       the same for dismissals
``d`` x ids, ``q`` x    event time and offset (-1 offline) of the message that applied
ids                     each remembered ``event_id`` (the dedupe window)
names                   in the order of the counts above (an offer once per entry)
======================  ===========================================================

Before that, profiles were hashes (one field per entry, ``f:<feature>``, ``b:``, ``t:``,
``x:``, ``d:``, ``e:``, and ``_L``, ``_t``, ``_pos``, ``_n``). Readers still decode such a hash
(:func:`profile_from_hash`) and the fenced write compares its ``_pos``, so a store written by
an older worker keeps working: each profile is rewritten compact by the next event of its user
(``zmot profiles migrate`` rewrites the rest at once). Event ids read from these older forms
become their digests. Upgrade readers (API) before writers (worker): a reader before the
compact format cannot read ``C``.

Counter hash, ``<prefix>agg:{p<partition>}``:

=================  ======================================================
``i:<offer_id>``   impressions of the offer (any channel)
``c:<offer_id>``   clicks on it
``d:<offer_id>``   dismissals of it
``rn:<item_id>``   ratings given in ``review`` events of the item
``rs:<item_id>``   their sum (1-5 each)
``_off``           offset of the last message of the partition already counted
=================  ======================================================

Person hash, ``<prefix>person:{tag}<sha256 of user_id>`` (no raw id in key or value; never
expires):

=================  ======================================================
``erased_at``      time of the last erasure (epoch seconds)
``profiling``      ``1`` consent to profiling given, ``0`` refused (absent: the default)
=================  ======================================================

Profiles of a rebuilt generation (blue/green, :mod:`recommender.core.generations`) are the same
values under ``<prefix>gen:<generation>:profile:<user_id>``; the generations record itself is
``<prefix>generations`` (:mod:`recommender.adapters.generation_store`).

Hash values (counters, person fields) are text: floats written with ``repr()``, which
round-trips exactly; counters are integers.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from string import Template
from typing import Protocol

import numpy as np

# The key names live in recommender.adapters.keys; re-exported for the modules that read both.
from recommender.adapters.keys import counters_key as counters_key
from recommender.adapters.keys import generation_prefix as generation_prefix
from recommender.adapters.keys import generations_key as generations_key
from recommender.adapters.keys import links_key as links_key
from recommender.adapters.keys import person_key as person_key
from recommender.adapters.keys import profile_key as profile_key
from recommender.core.feedback import CounterKey
from recommender.core.native import native as native_function
from recommender.core.privacy import PrivacyState
from recommender.core.profile import Position, Profile, event_key

# --- profile: the packed value -----------------------------------------------------------

FENCE_END = b"|"
"""Ends the fence token at the start of a packed profile."""

PACKED_ZLIB = b"Z"
PACKED_RAW = b"B"

PACK_LEVEL = 0
"""zlib level of written profiles: 0 stores them compact as they are (format ``C``).
Deflating (format ``D``) takes a compact 64-feature demo profile from about 860 to 760 bytes
of Redis memory for about 28 us more CPU per profile written, twice the encoding
(BENCHMARKS.md, "Redis memory")."""

_HEADER = struct.Struct("<BddqIIIIII")
_NAME_SEP = b"\xff"
_NAME_SEP_TEXT = "\udcff"  # what _NAME_SEP decodes to with errors="surrogateescape"


class CorruptProfileError(ValueError):
    """A stored profile value that is not in any format this code writes."""


def profile_to_value(profile: Profile, level: int = PACK_LEVEL) -> bytes:
    """A profile in format ``B`` / ``Z``, the workers' before the compact one (readers still
    read it; written now only by tests and the memory benchmark, with ``seen`` keyed by the
    event ids' text as those workers kept them)."""
    weights, purchases, touched, seen = (
        profile.weights,
        profile.purchases,
        profile.touched,
        profile.seen,
    )
    shown, dismissed = _entries(profile.shown), _entries(profile.dismissed)
    flags = (profile.landmark is not None) | (profile.last_ts is not None) << 1
    numbers = [
        _HEADER.pack(
            flags,
            profile.landmark or 0.0,
            profile.last_ts or 0.0,
            profile.n_events,
            len(weights),
            len(purchases),
            len(touched),
            len(shown),
            len(dismissed),
            len(seen),
        ),
        struct.pack(f"<{len(weights)}d", *weights.values()),
        struct.pack(f"<{len(purchases)}d", *purchases.values()),
        struct.pack(f"<{len(touched)}d", *touched.values()),
    ]
    for entries in (shown, dismissed):
        if entries:
            numbers.append(struct.pack(f"<{2 * len(entries)}q", *_hours_and_counts(entries)))
    if seen:
        times = [t for t, _ in seen.values()]
        offsets = [-1 if o is None else o for _, o in seen.values()]
        numbers.append(struct.pack(f"<{len(seen)}d{len(seen)}q", *times, *offsets))
    names = [
        *weights,
        *purchases,
        *touched,
        *(o for o, _, _ in shown),
        *(o for o, _, _ in dismissed),
        *map(str, seen),
    ]
    try:
        text = _NAME_SEP.join(map(str.encode, names))
    except UnicodeEncodeError:  # a lone surrogate (JSON allows them): kept as is
        text = _NAME_SEP.join(n.encode("utf-8", "surrogatepass") for n in names)
    payload = b"".join(numbers) + text
    token = position_token(profile.position).encode()
    if level > 0:
        return token + FENCE_END + PACKED_ZLIB + deflate(payload, level)
    return token + FENCE_END + PACKED_RAW + payload


def _entries(counts: Mapping[str, Mapping[int, int]]) -> list[tuple[str, int, int]]:
    """(offer, hour, count) of every exposure entry, offer by offer."""
    return [(o, h, n) for o, per_hour in counts.items() for h, n in per_hour.items()]


def _hours_and_counts(entries: list[tuple[str, int, int]]) -> list[int]:
    return [h for _, h, _ in entries] + [n for _, _, n in entries]


def deflate(data: bytes, level: int) -> bytes:
    """Raw deflate with a 2 KiB window and small hash tables: a profile is a few KiB, and on
    these values the small window compresses about 4% better than ``zlib.compress``'s 32 KiB
    one, no slower. (Any window up to 32 KiB inflates with :func:`profile_from_value`.)"""
    packer = zlib.compressobj(level, zlib.DEFLATED, -11, 3)
    return packer.compress(data) + packer.flush()


def split_value(value: bytes) -> tuple[bytes, bytes]:
    """(fence token, the rest) of a packed profile value."""
    token, sep, rest = value.partition(FENCE_END)
    if not sep:
        raise CorruptProfileError("a packed profile starts with its fence token and '|'")
    return token, rest


def profile_from_value(value: bytes, vocab: VocabularyView | None = None) -> Profile:
    """A profile from its stored value; the inverse of :func:`profile_to_value` and
    :func:`profile_to_compact`. A compact value needs the vocabulary it was written with and
    raises :class:`UnknownIds` for ids ``vocab`` does not hold yet (load them, call again)."""
    token, rest = split_value(value)
    kind, body = rest[:1], rest[1:]
    if kind in (PACKED_ZLIB, PACKED_COMPACT_ZLIB):
        try:
            payload = zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise CorruptProfileError(f"packed profile does not inflate: {exc}") from None
    elif kind in (PACKED_RAW, PACKED_COMPACT):
        payload = body
    else:
        raise CorruptProfileError(f"unknown packed profile format {kind!r}")
    try:
        position = _position(token)
        if kind in (PACKED_COMPACT, PACKED_COMPACT_ZLIB):
            profile = _unpack_compact(payload, vocab, position[1] if position else 0)
        else:
            profile = _unpack(payload)
    except (struct.error, ValueError, IndexError) as exc:
        raise CorruptProfileError(f"packed profile is truncated or malformed: {exc}") from None
    if position is not None:
        profile.partition, profile.offset = position
    return profile


def _position(token: bytes) -> Position | None:
    if not token:
        return None
    part, _, off = token.partition(b":")
    return int(part), int(off)


def _unpack(payload: bytes) -> Profile:
    flags, landmark, last_ts, n_events, nw, np_, nt, nx, nd, ne = _HEADER.unpack_from(payload)
    at = _HEADER.size
    floats = struct.unpack_from(f"<{nw + np_ + nt}d", payload, at)
    at += 8 * (nw + np_ + nt)
    shown_n = struct.unpack_from(f"<{2 * nx}q", payload, at)
    at += 16 * nx
    dismissed_n = struct.unpack_from(f"<{2 * nd}q", payload, at)
    at += 16 * nd
    seen_times = struct.unpack_from(f"<{ne}d", payload, at)
    at += 8 * ne
    seen_offsets = struct.unpack_from(f"<{ne}q", payload, at)
    at += 8 * ne
    count = nw + np_ + nt + nx + nd + ne
    names = _names(payload[at:], count)
    profile = Profile(
        weights=dict(zip(names[:nw], floats[:nw], strict=True)),
        landmark=landmark if flags & 1 else None,
        last_ts=last_ts if flags & 2 else None,
        n_events=n_events,
        purchases=dict(zip(names[nw : nw + np_], floats[nw : nw + np_], strict=True)),
        touched=dict(zip(names[nw + np_ : nw + np_ + nt], floats[nw + np_ :], strict=True)),
    )
    start = nw + np_ + nt
    for counts, flat, n in ((profile.shown, shown_n, nx), (profile.dismissed, dismissed_n, nd)):
        for i in range(n):
            counts.setdefault(names[start + i], {})[flat[i]] = flat[n + i]
        start += n
    for i in range(ne):
        offset = seen_offsets[i]
        profile.seen[event_key(names[start + i])] = (seen_times[i], None if offset < 0 else offset)
    return profile


def _names(raw: bytes, count: int) -> list[str]:
    if count == 0:
        if raw:
            raise ValueError("names after a profile without entries")
        return []
    text = raw.decode("utf-8", "surrogateescape")  # each 0xFF becomes _NAME_SEP_TEXT
    if "\udced" in text:  # a surrogate written with surrogatepass: decode name by name
        names = [part.decode("utf-8", "surrogatepass") for part in raw.split(_NAME_SEP)]
    else:
        names = text.split(_NAME_SEP_TEXT)
    if len(names) != count:
        raise ValueError(f"{len(names)} names for {count} entries")
    return names


# --- profile: the compact value (format C, the default) ------------------------------------

PACKED_COMPACT = b"C"
PACKED_COMPACT_ZLIB = b"D"

ITEM_NS = "item:"
"""Vocabulary namespace of item ids (purchases, touches): the same id as the item feature."""
OFFER_NS = "offer:"
"""Vocabulary namespace of offer ids (exposure counts)."""

_INLINE_PREFIXES = ("q:", "qp:")
"""Features made of a person's own search text: never in the shared vocabulary (it outlives
an erasure), always inline in the profile (SECURITY.md, "What Redis keeps")."""

MAX_SHARED_NAME = 120
"""Longer names (UTF-8 bytes) stay inline: junk ids cannot bloat the vocabulary."""

_C_HEADER = struct.Struct("<BBddI")
_C_COUNTS = struct.Struct("<6B")
_C_COUNTS_HALF = struct.Struct("<6H")
_C_COUNTS_WIDE = struct.Struct("<6I")
_MS_SPAN = 1 << 32
_F_LANDMARK, _F_LAST, _F_MS, _F_RELATIVE, _F_WIDE, _F_HALF, _F_DOUBLE = 1, 2, 4, 8, 16, 32, 64


def _counts_struct(flags: int) -> struct.Struct:
    if flags & _F_WIDE:
        return _C_COUNTS_WIDE
    return _C_COUNTS_HALF if flags & _F_HALF else _C_COUNTS


_WIDTH_CODES = {1: "B", 2: "H", 4: "I"}


class VocabularyView(Protocol):
    """What the compact codec needs of the shared vocabulary (:mod:`.vocabulary`)."""

    ids: dict[str, int]
    names: dict[int, str]
    full: bool
    inline: dict[str, bytes]
    """Names kept inline, with their inline bytes (a cache of :func:`inline_name`)."""
    shared_text: frozenset[str]
    """Search features (``q:``, ``qp:``) that may be shared: the shop's own words."""


class UnassignedNames(Exception):
    """Names a compact profile would share that have no vocabulary id yet (assign, retry)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"{len(names)} names without a vocabulary id")
        self.names = names


class UnknownIds(Exception):
    """Vocabulary ids in a compact profile this process does not know yet (load, retry)."""

    def __init__(self, ids: set[int]) -> None:
        super().__init__(f"{len(ids)} unknown vocabulary ids")
        self.ids = ids


def is_shareable(name: str, shared_text: frozenset[str] = frozenset()) -> bool:
    """True when ``name`` may go into the shared vocabulary: not too long, and not a
    person's search text (a search feature only when it is in ``shared_text``)."""
    if name.startswith(_INLINE_PREFIXES):
        return name in shared_text
    try:
        return len(name.encode("utf-8")) <= MAX_SHARED_NAME
    except UnicodeEncodeError:  # a lone surrogate (JSON allows them): not for Redis as text
        return False


def _uints(values: list[int]) -> tuple[int, bytes]:
    """(width in bytes, little-endian array) of non-negative ints below 2**32."""
    top = max(values, default=0)
    width = 1 if top < 0x100 else 2 if top < 0x10000 else 3 if top < 0x1000000 else 4
    if width == 3:
        return 3, np.asarray(values, dtype="<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return width, struct.pack(f"<{len(values)}{_WIDTH_CODES[width]}", *values)


def _read_uints(width: int, n: int, data: bytes, at: int) -> list[int]:
    if width == 3:
        raw = np.frombuffer(data, dtype=np.uint8, count=3 * n, offset=at).reshape(n, 3)
        wide = np.zeros((n, 4), dtype=np.uint8)
        wide[:, :3] = raw
        return wide.view("<u4").ravel().tolist()
    return list(struct.unpack_from(f"<{n}{_WIDTH_CODES[width]}", data, at))


def inline_name(name: str) -> bytes:
    """A name's bytes in the inline part of a compact value (a leading code byte stands for
    the ``q:`` / ``qp:`` prefix)."""
    if name.startswith("q:"):
        return b"\x01" + name[2:].encode("utf-8", "surrogatepass")
    if name.startswith("qp:"):
        return b"\x02" + name[3:].encode("utf-8", "surrogatepass")
    return b"\x00" + name.encode("utf-8", "surrogatepass")


_INLINE_HEADS = ("", "q:", "qp:")


_F32_MAX = 3.4028234663852886e38


def _fits_single(weights: Mapping[str, float]) -> bool:
    """True when single precision holds every weight's magnitude (else doubles are kept)."""
    return (
        not weights
        or max(map(abs, weights.values())) <= _F32_MAX
        or (all(abs(w) <= _F32_MAX or math.isinf(w) for w in weights.values()))
    )


def narrowed(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` as a compact value stores them: IEEE single precision (24 significant
    bits, relative error below 6e-8), or as they are when one is beyond its range."""
    if not _fits_single(weights):
        return dict(weights)
    return dict(zip(weights, array("f", weights.values()).tolist(), strict=True))


def profile_to_compact(profile: Profile, vocab: VocabularyView, level: int = 0) -> bytes:
    """The compact stored value (format ``C``, deflated ``D``): names as vocabulary ids,
    event ids as digests, weights in single precision (module docstring)."""
    weights, seen = profile.weights, profile.seen
    purchases, touched = profile.purchases, profile.touched
    shown, dismissed = _entries(profile.shown), _entries(profile.dismissed)
    names = [
        *weights,
        *[ITEM_NS + i for i in purchases],
        *[ITEM_NS + i for i in touched],
        *[OFFER_NS + o for o, _, _ in shown],
        *[OFFER_NS + o for o, _, _ in dismissed],
    ]
    refs = list(map(vocab.ids.get, names, repeat(0)))
    inline: list[bytes] = []
    if 0 in refs:
        unassigned = []
        kept = vocab.inline
        at = -1
        for _ in range(refs.count(0)):  # only the names without an id (a C-level search)
            at = refs.index(0, at + 1)
            name = names[at]
            raw = kept.get(name)
            if raw is None:
                if not vocab.full and is_shareable(name, vocab.shared_text):
                    unassigned.append(name)
                    continue
                raw = kept[name] = inline_name(name)
            inline.append(raw)
        if unassigned:
            raise UnassignedNames(unassigned)
    flags = (profile.landmark is not None) * _F_LANDMARK | (profile.last_ts is not None) * _F_LAST
    if not _fits_single(weights):
        flags |= _F_DOUBLE
    counts = (len(weights), len(purchases), len(touched), len(shown), len(dismissed), len(seen))
    top = max(counts)
    if top > 0xFF:
        flags |= _F_WIDE if top > 0xFFFF else _F_HALF
    times = [*purchases.values(), *touched.values(), *[t for t, _ in seen.values()]]
    try:
        whole = [round(t * 1000) for t in times]  # whole ms, if that is what they are
        last_ms = round((profile.last_ts or 0.0) * 1000)
    except (ValueError, OverflowError):  # NaN or infinite: kept as doubles
        whole, last_ms = [], 0
    if [k / 1000 for k in whole] == times and (
        not whole or (last_ms - max(whole) >= 0 and last_ms - min(whole) < _MS_SPAN)
    ):
        flags |= _F_MS
        time_bytes = struct.pack(f"<{len(whole)}I", *[last_ms - k for k in whole])
    else:
        time_bytes = struct.pack(f"<{len(times)}d", *times)
    if seen:
        position = profile.position
        base = position[1] if position is not None else 0
        offsets = [0 if o is None else base - o + 1 for _, o in seen.values()]
        # 0 stands for offline, so an offset must come out at 1 or more (at or before the
        # fence) to be written relative to it
        relative = [k for k, (_, o) in zip(offsets, seen.values(), strict=True) if o is not None]
        if min(relative, default=1) >= 1 and max(offsets) < _MS_SPAN:
            flags |= _F_RELATIVE
            offset_width, offset_bytes = _uints(offsets)
        else:
            offset_width = 8
            offset_bytes = struct.pack(
                f"<{len(seen)}q", *[-1 if o is None else o for _, o in seen.values()]
            )
    else:
        flags |= _F_RELATIVE
        offset_width, offset_bytes = 1, b""
    ref_width, ref_bytes = _uints(refs)
    parts = [
        _C_HEADER.pack(
            flags,
            ref_width | offset_width << 4,
            profile.landmark or 0.0,
            profile.last_ts or 0.0,
            profile.n_events,
        ),
        _counts_struct(flags).pack(*counts),
        array("d" if flags & _F_DOUBLE else "f", weights.values()).tobytes(),
        ref_bytes,
    ]
    for entries in (shown, dismissed):
        if entries:
            parts.append(struct.pack(f"<{2 * len(entries)}q", *_hours_and_counts(entries)))
    if seen:
        parts.append(struct.pack(f"<{len(seen)}Q", *seen))
    parts += [time_bytes, offset_bytes, _NAME_SEP.join(inline)]
    payload = b"".join(parts)
    token = position_token(profile.position).encode()
    if level > 0:
        return token + FENCE_END + PACKED_COMPACT_ZLIB + deflate(payload, level)
    return token + FENCE_END + PACKED_COMPACT + payload


def _unpack_compact(payload: bytes, vocab: VocabularyView | None, base: int) -> Profile:
    """A compact payload's profile: ``zmot_native.unpack_compact`` when the native module
    serves and takes the value (one call instead of a dozen ``struct`` reads and the dict
    building), else :func:`_unpack_compact_python`, the reference, which also raises for
    whatever the native one declines."""
    native = native_function("unpack_compact")
    if native is not None:
        fields = native(payload, None if vocab is None else vocab.names, base)
        if fields is not None:
            weights, landmark, last_ts, n_events, purchases, touched, seen, shown, dismissed = (
                fields
            )
            return Profile(
                weights=weights,
                landmark=landmark,
                last_ts=last_ts,
                n_events=n_events,
                purchases=purchases,
                touched=touched,
                shown=shown,
                dismissed=dismissed,
                seen=seen,
            )
    return _unpack_compact_python(payload, vocab, base)


def _unpack_compact_python(payload: bytes, vocab: VocabularyView | None, base: int) -> Profile:
    flags, widths, landmark, last_ts, n_events = _C_HEADER.unpack_from(payload)
    at = _C_HEADER.size
    counts_struct = _counts_struct(flags)
    nw, np_, nt, nx, nd, ne = counts_struct.unpack_from(payload, at)
    at += counts_struct.size
    size = 8 if flags & _F_DOUBLE else 4
    weights = array("d" if size == 8 else "f", payload[at : at + size * nw]).tolist()
    at += size * nw
    ref_width, offset_width = widths & 15, widths >> 4
    n_refs = nw + np_ + nt + nx + nd
    refs = _read_uints(ref_width, n_refs, payload, at)
    at += ref_width * n_refs
    shown_n = struct.unpack_from(f"<{2 * nx}q", payload, at)
    at += 16 * nx
    dismissed_n = struct.unpack_from(f"<{2 * nd}q", payload, at)
    at += 16 * nd
    digests = struct.unpack_from(f"<{ne}Q", payload, at)
    at += 8 * ne
    n_times = np_ + nt + ne
    if flags & _F_MS:
        last_ms = round(last_ts * 1000)
        times = [(last_ms - d) / 1000 for d in struct.unpack_from(f"<{n_times}I", payload, at)]
        at += 4 * n_times
    else:
        times = list(struct.unpack_from(f"<{n_times}d", payload, at))
        at += 8 * n_times
    if flags & _F_RELATIVE:
        offsets: list[int | None] = [
            None if d == 0 else base - d + 1 for d in _read_uints(offset_width, ne, payload, at)
        ]
    else:
        offsets = [None if o < 0 else o for o in struct.unpack_from(f"<{ne}q", payload, at)]
    at += offset_width * ne
    names = _resolve(refs, payload[at:], vocab)
    profile = Profile(
        weights=dict(zip(names[:nw], weights, strict=True)),
        landmark=landmark if flags & _F_LANDMARK else None,
        last_ts=last_ts if flags & _F_LAST else None,
        n_events=n_events,
        purchases={name[5:]: t for name, t in zip(names[nw : nw + np_], times[:np_], strict=True)},
        touched={
            name[5:]: t
            for name, t in zip(names[nw + np_ : nw + np_ + nt], times[np_ : np_ + nt], strict=True)
        },
        seen=dict(zip(digests, zip(times[np_ + nt :], offsets, strict=True), strict=True)),
    )
    start = nw + np_ + nt
    for counts, flat, n in ((profile.shown, shown_n, nx), (profile.dismissed, dismissed_n, nd)):
        for i in range(n):
            counts.setdefault(names[start + i][6:], {})[flat[i]] = flat[n + i]
        start += n
    return profile


def _resolve(refs: list[int], inline_raw: bytes, vocab: VocabularyView | None) -> list[str]:
    """The names of ``refs``: vocabulary ids, and 0 for the next inline name."""
    table = {} if vocab is None else vocab.names
    if 0 not in refs:
        if inline_raw:
            raise ValueError("inline names after a profile without any")
        try:
            return list(map(table.__getitem__, refs))
        except KeyError:
            raise UnknownIds({r for r in refs if r not in table}) from None
    parts = inline_raw.split(_NAME_SEP)
    zeros = [at for at, ref in enumerate(refs) if not ref]
    if len(parts) != len(zeros):
        raise ValueError(f"{len(parts)} inline names for {len(zeros)} references")
    # every part non-empty with a known code byte (the greatest part has the greatest byte)
    if b"" in parts or max(parts)[0] >= len(_INLINE_HEADS):
        raise ValueError("an inline name without a valid code byte")
    names: list[str | None] = list(map(table.get, refs))  # None for 0 (ids start at 1)
    heads = _INLINE_HEADS
    for at, part in zip(zeros, parts, strict=True):
        names[at] = heads[part[0]] + part[1:].decode("utf-8", "surrogatepass")
    if None in names:
        raise UnknownIds({r for r in refs if r and r not in table})
    return names  # type: ignore[return-value]  # no None left


# --- profile hash (the format before the packed value: read, never written) ------------

FEATURE_TAG = "f:"
PURCHASE_TAG = "b:"
TOUCH_TAG = "t:"
SHOWN_TAG = "x:"
DISMISSED_TAG = "d:"
SEEN_TAG = "e:"
LANDMARK_FIELD = "_L"
LAST_TS_FIELD = "_t"
POSITION_FIELD = "_pos"
EVENTS_FIELD = "_n"


def position_token(position: Position | None) -> str:
    """The ``_pos`` value of a fence position ('' for a profile never written)."""
    return "" if position is None else f"{position[0]}:{position[1]}"


def profile_to_hash(profile: Profile) -> dict[str, str]:
    """The Redis hash fields of a profile."""
    out = {f"{FEATURE_TAG}{name}": repr(value) for name, value in profile.weights.items()}
    out.update({f"{PURCHASE_TAG}{item}": repr(ts) for item, ts in profile.purchases.items()})
    out.update({f"{TOUCH_TAG}{item}": repr(ts) for item, ts in profile.touched.items()})
    for tag, counts in ((SHOWN_TAG, profile.shown), (DISMISSED_TAG, profile.dismissed)):
        for offer_id, per_hour in counts.items():
            out.update({f"{tag}{offer_id}:{bucket}": str(n) for bucket, n in per_hour.items()})
    for event_id, (ts, offset) in profile.seen.items():
        out[f"{SEEN_TAG}{event_id}"] = f"{'' if offset is None else offset}:{ts!r}"
    if profile.landmark is not None:
        out[LANDMARK_FIELD] = repr(profile.landmark)
    if profile.last_ts is not None:
        out[LAST_TS_FIELD] = repr(profile.last_ts)
    token = position_token(profile.position)
    if token:
        out[POSITION_FIELD] = token
    out[EVENTS_FIELD] = str(profile.n_events)
    return out


def profile_from_hash(mapping: Mapping[bytes | str, bytes | str]) -> Profile:
    """A profile from Redis hash fields (bytes or text); the inverse of :func:`profile_to_hash`.

    Hot in the worker's read path: values go to ``float`` / ``int`` as they come (both take
    bytes), and a key is matched on its two-character tag before anything else.
    """
    profile = Profile()
    weights, purchases, touched = profile.weights, profile.purchases, profile.touched
    for raw_key, value in mapping.items():
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        tag = key[:2]
        if tag == FEATURE_TAG:
            weights[key[2:]] = float(value)
        elif tag == TOUCH_TAG:
            touched[key[2:]] = float(value)
        elif tag == PURCHASE_TAG:
            purchases[key[2:]] = float(value)
        elif tag == SHOWN_TAG or tag == DISMISSED_TAG:
            offer_id, _, bucket = key[2:].rpartition(":")
            counts = profile.shown if tag == SHOWN_TAG else profile.dismissed
            counts.setdefault(offer_id, {})[int(bucket)] = int(value)
        elif tag == SEEN_TAG:
            text = value.decode() if isinstance(value, bytes) else value
            off, _, ts = text.partition(":")
            profile.seen[event_key(key[2:])] = (float(ts), int(off) if off else None)
        elif key == LANDMARK_FIELD:
            profile.landmark = float(value)
        elif key == LAST_TS_FIELD:
            profile.last_ts = float(value)
        elif key == POSITION_FIELD:
            text = value.decode() if isinstance(value, bytes) else value
            part, _, off = text.partition(":")
            profile.partition, profile.offset = int(part), int(off)
        elif key == EVENTS_FIELD:
            profile.n_events = int(value)
    return profile


_encode_json = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":")
).encode


def encode_fields(fields: dict[str, str]) -> bytes:
    """The hash as one script argument: a flat JSON array of UTF-8 strings.

    Every value is a string (floats as their ``repr``), so Lua never sees a JSON number and
    Redis stores exactly the bytes it stored when each field was its own argument. Non-ASCII
    text goes as raw UTF-8, which ``cjson.decode`` copies through unchanged.
    """
    return _encode_json([part for pair in fields.items() for part in pair]).encode()


# --- person hash --------------------------------------------------------------------------

ERASED_FIELD = "erased_at"
CONSENT_FIELD = "profiling"


def privacy_from_values(erased: bytes | str | None, consent: bytes | str | None) -> PrivacyState:
    """A person's state from the HMGET of (erased_at, profiling)."""
    flag = None if consent is None else consent in (b"1", "1")
    return PrivacyState(None if erased is None else float(erased), flag)


# --- counter hash -------------------------------------------------------------------------

OFFSET_FIELD = "_off"

COUNTER_TAGS: dict[str, str] = {
    "impressions": "i",
    "clicks": "c",
    "dismissals": "d",
    "ratings": "rn",
    "rating_sum": "rs",
    "arm_impressions": "ai",
    "arm_clicks": "ac",
    "arm_dismissals": "ad",
    "arm_carts": "ak",
    "arm_conversions": "av",
    "arm_revenue": "ar",
    "arm_revenue_sq": "aq",
}
"""Counter kind (:data:`recommender.core.feedback.COUNTER_KINDS`) -> field tag."""


def counter_field(key: CounterKey) -> str:
    """The hash field of one counter, e.g. ``c:O1`` for the clicks on offer O1."""
    return f"{COUNTER_TAGS[key.kind]}:{key.subject}"


def offset_token(offset: int | None) -> str:
    """The stored ``_off`` value ('' for a partition never counted)."""
    return "" if offset is None else str(offset)


def parse_offset(value: bytes | str | None) -> int | None:
    """The last counted offset from a stored ``_off`` value (None when absent)."""
    if value is None or value in (b"", ""):
        return None
    return int(value)


def sum_counters(
    keys: Sequence[CounterKey], per_partition: Iterable[Sequence[bytes | str | None]]
) -> dict[CounterKey, int]:
    """Totals of ``keys`` from each partition's values of their fields (HMGET order)."""
    sums = [0] * len(keys)
    for values in per_partition:
        for i, value in enumerate(values):
            if value is not None:
                sums[i] += int(value)
    return dict(zip(keys, sums, strict=True))


# --- scripts ------------------------------------------------------------------------------


def lua(template: str) -> str:
    """A Lua script with ``$position_field`` / ``$offset_field`` filled in from this module."""
    return Template(template).substitute(position_field=POSITION_FIELD, offset_field=OFFSET_FIELD)
