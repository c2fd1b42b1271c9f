"""Every Redis key name zmot writes, and the hash tags that place them in Redis Cluster slots.

One key scheme for a single Redis and for a Redis Cluster. A cluster puts a key in one of
16384 slots by the CRC16 of its hash tag (the text between the first ``{`` and the next
``}``), and a Lua script or a MULTI may only touch keys of one slot. So:

- every key of one person carries the same tag, ``{`` + the first 8 hex digits of the SHA-256
  of the user id + ``}`` (:func:`user_tag`): the profile, the links of a known user to
  anonymous ids, the decision index and the privacy record land in one slot. The privacy record
  must not hold the raw id (it outlives the person), which is why the tag is a digest and not
  the id itself; the digest also keeps ids with braces from choosing their own slot.
- every key of one Kafka partition carries ``{p<partition>}``: the feedback counters and their
  offset fence (one hash today) and whatever per-partition key joins them.
- a decision record (``dec:<decision_id>``) is read and written alone and has no tag; the rate
  limiter's keys (``rate...``) belong to the `limits` library (one key per script).

Keys (``P`` is ``ZMOT_REDIS_PREFIX``, ``T`` the user's tag, ``u`` the user id):

=================================  ===============================================
``P profile:{T}u``                 the profile hash (fields: :mod:`.codec`)
``P links:{T}u``                   set of anonymous ids linked to a known user
``P udec:{T}u``                    sorted set of the person's decision ids
``P person:{T}<sha256 of u>``      consent and erasure record (no raw id)
``P agg:{p<n>}``                   feedback counters of partition n, fence ``_off``
``P dec:<decision_id>``            a decision record (JSON)
``P layout``                       :data:`LAYOUT_VERSION` of the keys under ``P``
``P generations``                  the blue/green profile generations record (hash)
``P gen:<name>:profile:{T}u``      a rebuilt generation's profiles (the same keys
                                   under :func:`generation_prefix`)
=================================  ===============================================

Layout 1 (zmot before this scheme) had no tags: ``P profile:u``, ``P links:u``, ``P udec:u``,
``P person:<sha256>``, ``P agg:<n>``. :func:`old_to_new` maps such a key to its new name
(``zmot migrate-keys``).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from recommender.core.privacy import person_hash

TAG_HEX = 8
"""Hex digits of the user's digest in the tag: 2^32 values spread over the 16384 slots."""

LAYOUT_VERSION = "2"
"""The key scheme of this module; ``P layout`` holds it once zmot wrote under ``P``."""


@lru_cache(maxsize=16384)
def user_tag(user_id: str) -> str:
    """The hash tag (braces included) of every key of ``user_id``.

    Cached: a worker batch names each user's keys on its read and again on its write, and a
    SHA-256 costs about 0.7 us here against 0.15 us for a cache hit.
    """
    return "{" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:TAG_HEX] + "}"


def partition_tag(partition: int) -> str:
    """The hash tag (braces included) of every key of one Kafka partition."""
    return f"{{p{partition}}}"


def profile_key(prefix: str, user_id: str) -> str:
    """The Redis key of a user's profile hash."""
    return f"{prefix}profile:{user_tag(user_id)}{user_id}"


def links_key(prefix: str, user_id: str) -> str:
    """The Redis key of the set of anonymous ids linked to a known user (``identify``)."""
    return f"{prefix}links:{user_tag(user_id)}{user_id}"


def decisions_key(prefix: str, user_id: str) -> str:
    """The Redis key of the sorted set of a person's decision ids (by decision time)."""
    return f"{prefix}udec:{user_tag(user_id)}{user_id}"


@lru_cache(maxsize=16384)
def person_key(prefix: str, user_id: str) -> str:
    """The Redis key of a person's privacy hash: keyed by the hash of the id, not the id.

    Cached as :func:`user_tag` is: every next-best-offer reads the person's hash (a SHA-256
    and a format per request otherwise)."""
    digest = person_hash(user_id)
    return f"{prefix}person:{{{digest[:TAG_HEX]}}}{digest}"


def counters_key(prefix: str, partition: int) -> str:
    """The Redis key of a partition's feedback counter hash."""
    return f"{prefix}agg:{partition_tag(partition)}"


def decision_key(prefix: str, decision_id: str) -> str:
    """The Redis key of one decision record."""
    return f"{prefix}dec:{decision_id}"


VOCAB_TAG = "{vocab}"
"""The hash tag of the feature vocabulary's two hashes: one slot of their own, so one script
assigns an id to both atomically (per-user scripts never touch them)."""


def vocab_keys(prefix: str) -> tuple[str, str]:
    """The Redis keys of the feature vocabulary under ``prefix``: (name -> id, id -> name)."""
    return f"{prefix}vocab:{VOCAB_TAG}names", f"{prefix}vocab:{VOCAB_TAG}ids"


_PROFILE_KEY = re.compile(r"profile:\{[0-9a-f]{" + str(TAG_HEX) + r"}\}")


def prefix_of_profile_key(key: str) -> str:
    """The prefix ``P`` of a profile key ``P profile:{T}u`` (the vocabulary its value uses)."""
    match = _PROFILE_KEY.search(key)
    if match is None:
        raise ValueError(f"not a profile key: {key!r}")
    return key[: match.start()]


def layout_key(prefix: str) -> str:
    """The Redis key that records which key scheme the keys under ``prefix`` follow."""
    return f"{prefix}layout"


# --- reading keys back ----------------------------------------------------------------------


def scan_pattern(prefix: str, kind: str) -> str:
    """A SCAN MATCH pattern for every key of ``kind`` (``profile``, ``person``...) under
    ``prefix``, the prefix's glob characters escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + f"{kind}:*"


_USER_KEY = re.compile(r"\{([0-9a-f]{" + str(TAG_HEX) + r"})\}(.*)\Z", re.DOTALL)


def user_of(prefix: str, kind: str, key: str) -> str | None:
    """The user id of a per-user key of ``kind`` (``profile``, ``links``, ``udec``) in this
    scheme, None for any other key (another kind, or a layout 1 key)."""
    head = f"{prefix}{kind}:"
    if not key.startswith(head):
        return None
    match = _USER_KEY.match(key, len(head))
    if match is None or user_tag(match.group(2)) != "{" + match.group(1) + "}":
        return None
    return match.group(2)


USER_KINDS = ("profile", "links", "udec")
"""Kinds of per-user keys whose name ends in the raw user id."""


def old_to_new(prefix: str, key: str) -> str | None:
    """The name in this scheme of a layout 1 key under ``prefix``; None when ``key`` already
    follows this scheme or is not one of the renamed kinds."""
    if not key.startswith(prefix):
        return None
    kind, sep, rest = key[len(prefix) :].partition(":")
    if not sep:
        return None
    if kind in USER_KINDS:
        if user_of(prefix, kind, key) is not None:
            return None
        return f"{prefix}{kind}:{user_tag(rest)}{rest}"
    if kind == "person" and re.fullmatch(r"[0-9a-f]{64}", rest):
        return f"{prefix}person:{{{rest[:TAG_HEX]}}}{rest}"
    if kind == "agg" and rest.isdigit():
        return counters_key(prefix, int(rest))
    return None


__all__ = [
    "LAYOUT_VERSION",
    "counters_key",
    "decision_key",
    "decisions_key",
    "layout_key",
    "links_key",
    "old_to_new",
    "partition_tag",
    "person_key",
    "prefix_of_profile_key",
    "profile_key",
    "scan_pattern",
    "user_of",
    "user_tag",
    "vocab_keys",
]


def generation_prefix(prefix: str, generation: str) -> str:
    """The prefix of a rebuilt profile generation's keys (:mod:`recommender.core.generations`):
    its profiles are ``profile_key(generation_prefix(prefix, name), user_id)``, tagged as any."""
    return f"{prefix}gen:{generation}:"


def generations_key(prefix: str) -> str:
    """The Redis key of the profile generations record (one hash: live, rebuild, retired)."""
    return f"{prefix}generations"
