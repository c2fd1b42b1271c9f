"""The Redis form of profiles and feedback counters: hash fields, fence values.

Everything that knows how a :class:`~recommender.core.profile.Profile` or a feedback counter
looks in Redis is here, so the core stays free of storage names and the Lua scripts are built
from the same constants (:func:`lua`): a renamed field cannot leave a script behind.

Profile hash, ``<prefix>profile:{tag}<user_id>`` (key names: :mod:`.keys`):

=====================  ============================================================
``f:<feature>``        stored (landmark-scaled) weight
``b:<item>``           purchase time
``t:<item>``           time of the last item event on it (the newest ``touch_memory``)
``x:<offer>:<hour>``   impressions of the offer in that event-time hour
``d:<offer>:<hour>``   dismissals of it (hour = epoch seconds // 3600; the offer id may
                       hold ':', the hour is after the last one)
``e:<event_id>``       ``<offset>:<event time>`` of the message that applied the id (offset
                       empty offline), for the dedupe window
``_L``                 landmark
``_t``                 last event time
``_pos``               ``partition:offset`` of the last applied message (the fence)
``_n``                 events applied
=====================  ============================================================

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
hashes under ``<prefix>gen:<generation>:profile:<user_id>``; the generations record itself is
``<prefix>generations`` (:mod:`recommender.adapters.generation_store`).

Floats are written with ``repr()``, which round-trips exactly; counters are integers.
"""

from __future__ import annotations

import json
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

# --- profile hash -------------------------------------------------------------------------

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
