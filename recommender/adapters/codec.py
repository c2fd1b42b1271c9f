"""The Redis form of profiles and feedback counters: hash fields, fence values.

Everything that knows how a :class:`~recommender.core.profile.Profile` or a feedback counter
looks in Redis is here, so the core stays free of storage names and the Lua scripts are built
from the same constants (:func:`lua`): a renamed field cannot leave a script behind.

Profile, ``<prefix>profile:{tag}<user_id>`` (key names: :mod:`.keys`): ONE string value
(:func:`profile_to_value`),

    <fence>|<format byte><payload>

``<fence>`` is ``partition:offset`` of the last applied message ('' offline), in clear so the
fenced write's Lua script reads it with ``GETRANGE`` without decoding the rest. The format
byte says how the payload is stored: ``B`` as is (the default, :data:`PACK_LEVEL`), ``Z``
deflated (raw deflate, no zlib header, a 2 KiB window: :func:`deflate`). The payload is a
fixed header, the numbers as little-endian arrays, then every name (features, items, offers,
event ids) as UTF-8 separated by the byte ``0xFF``, which UTF-8 never contains:

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

One value instead of one hash field per entry: a profile of 64 features took 3,331 bytes of
Redis memory as a hash and about a third of that packed (BENCHMARKS.md, "Redis memory"); it is
read with one ``MGET`` for a whole batch and decoded with a few ``struct`` calls. Floats are
stored as IEEE doubles, so a profile round-trips exactly.

Before this format profiles were hashes (one field per entry, ``f:<feature>``, ``b:``, ``t:``,
``x:``, ``d:``, ``e:``, and ``_L``, ``_t``, ``_pos``, ``_n``). Readers still decode such a hash
(:func:`profile_from_hash`) and the fenced write compares its ``_pos``, so a store written by
an older worker keeps working: each profile is rewritten packed by the next event of its user
(``zmot profiles migrate`` rewrites the rest at once).

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
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from string import Template

# The key names live in recommender.adapters.keys; re-exported for the modules that read both.
from recommender.adapters.keys import counters_key as counters_key
from recommender.adapters.keys import generation_prefix as generation_prefix
from recommender.adapters.keys import generations_key as generations_key
from recommender.adapters.keys import links_key as links_key
from recommender.adapters.keys import person_key as person_key
from recommender.adapters.keys import profile_key as profile_key
from recommender.core.feedback import CounterKey
from recommender.core.privacy import PrivacyState
from recommender.core.profile import Position, Profile

# --- profile: the packed value -----------------------------------------------------------

FENCE_END = b"|"
"""Ends the fence token at the start of a packed profile."""

PACKED_ZLIB = b"Z"
PACKED_RAW = b"B"

PACK_LEVEL = 0
"""zlib level of packed profiles: 0 stores them as they are (format ``B``). Deflating (format
``Z``, level 1: 9 saves little more on these short values) takes a 64-feature profile from
about 2.6 to 1.6 KB of Redis memory, but costs 40-50 us of CPU per profile written, more than
all the rest of the worker's work on an event (BENCHMARKS.md, "Stream worker")."""

_HEADER = struct.Struct("<BddqIIIIII")
_NAME_SEP = b"\xff"
_NAME_SEP_TEXT = "\udcff"  # what _NAME_SEP decodes to with errors="surrogateescape"


class CorruptProfileError(ValueError):
    """A stored profile value that is not in any format this code writes."""


def profile_to_value(profile: Profile, level: int = PACK_LEVEL) -> bytes:
    """The stored value of a profile: fence token, format byte, payload (module docstring)."""
    weights, purchases, touched, seen = (
        profile.weights,
        profile.purchases,
        profile.touched,
        profile.seen,
    )
    shown = [(o, h, n) for o, per_hour in profile.shown.items() for h, n in per_hour.items()]
    dismissed = [
        (o, h, n) for o, per_hour in profile.dismissed.items() for h, n in per_hour.items()
    ]
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
        *seen,
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


def profile_from_value(value: bytes) -> Profile:
    """A profile from its stored value; the inverse of :func:`profile_to_value`."""
    token, rest = split_value(value)
    kind, body = rest[:1], rest[1:]
    if kind == PACKED_ZLIB:
        try:
            payload = zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise CorruptProfileError(f"packed profile does not inflate: {exc}") from None
    elif kind == PACKED_RAW:
        payload = body
    else:
        raise CorruptProfileError(f"unknown packed profile format {kind!r}")
    try:
        profile = _unpack(payload)
    except (struct.error, ValueError, IndexError) as exc:
        raise CorruptProfileError(f"packed profile is truncated or malformed: {exc}") from None
    if token:
        part, _, off = token.partition(b":")
        profile.partition, profile.offset = int(part), int(off)
    return profile


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
        profile.seen[names[start + i]] = (seen_times[i], None if offset < 0 else offset)
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
            profile.seen[key[2:]] = (float(ts), int(off) if off else None)
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
