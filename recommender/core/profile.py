"""The live interest profile of one user and the one function that updates it.

The stream worker, training and evaluation all call :func:`apply_event`; nothing else changes a
profile, so live and offline profiles agree by construction. :func:`apply_event_reference` is
its plainly written twin, kept as the test oracle of that hot path.

Decay is *forward decay* on event time: a feature's stored value is
``sum(weight_e * 2**((t_e - L) / h))`` for a per-profile landmark ``L``, so applying an event only
adds to fields, and the weight at time ``t`` is ``stored * 2**((L - t) / h)``. All features share
that factor, so ranking and L1-normalised scoring need no decay at read time at all. When the
exponent grows large the profile is rescaled to a new landmark to keep the numbers finite.

The profile also remembers the user's *exposure*: how often each offer was shown
(``impression``) or dismissed, counted per event-time hour. It is part of the profile, behind
the same offset fence as the interests, so frequency caps are exactly as replay-safe as
profiles, and it holds no more than the longest window a rule asks about (``exposure_keep_s``).

How a profile is stored (one Redis hash per user) is :mod:`recommender.adapters.codec`'s business.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import countOf, itemgetter

RENORMALISE_EXPONENT = 32.0
"""Rescale to a new landmark once an event is this many half-lives past it (2**32 ~ 4e9)."""

EXPOSURE_BUCKET_S = 3600
"""Exposure is counted per event-time hour: windows are rounded out to whole hours."""

ExposureCounts = dict[str, dict[int, int]]
"""offer_id -> hour bucket (``int(ts // EXPOSURE_BUCKET_S)``) -> events in that hour."""

Position = tuple[int, int]
"""(partition, offset) of a Kafka message."""


def event_key(event_id: str) -> int:
    """The 64-bit digest (BLAKE2b) a profile remembers instead of an ``event_id``.

    Deduplication only asks "was this id applied?", so 8 bytes do instead of the id's text
    (a UUID is 36). The price is a collision: a new event whose digest equals one of the at
    most ``dedupe_memory`` (128) ids its user's profile remembers is dropped as a duplicate,
    with probability at most 128 / 2**64 = 6.9e-18 per event (3.15e12 events, a year at
    100k events/s, expect 2e-5 such drops). Unkeyed on purpose: whoever could craft a
    collision for a user can as well resend that user's event id itself.
    """
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


@dataclass(frozen=True)
class ProfileParams:
    """How profiles decay and how much they keep."""

    half_life_s: float = 72 * 3600.0
    top_n: int = 64
    purchase_memory: int = 32
    touch_memory: int = 20
    """Most items whose last touch (an item event) is remembered per profile: how recently
    the shopper was on an item, which its decayed weight mixes with how often."""
    exposure_keep_s: float = 168 * 3600.0
    """Exposure older than this (before the newest event) is dropped: the longest window asked."""
    exposure_memory: int = 512
    """Most (offer, hour) entries kept per kind; beyond it the oldest hours go first."""
    dedupe_window_s: float = 24 * 3600.0
    """An ``event_id`` is remembered while its event time is within this of the newest event."""
    dedupe_memory: int = 128
    """Most event ids remembered per profile; beyond it the oldest (by event time) go first."""


@dataclass
class Profile:
    """Decayed feature weights of one user, with the Kafka position of the last applied event."""

    weights: dict[str, float] = field(default_factory=dict)
    landmark: float | None = None
    last_ts: float | None = None
    partition: int | None = None
    offset: int | None = None
    n_events: int = 0
    purchases: dict[str, float] = field(default_factory=dict)
    touched: dict[str, float] = field(default_factory=dict)
    """Item -> event time of the user's last item event on it (the newest ``touch_memory``)."""
    shown: ExposureCounts = field(default_factory=dict)
    dismissed: ExposureCounts = field(default_factory=dict)
    seen: dict[int, tuple[float, int | None]] = field(default_factory=dict)
    """:func:`event_key` of an event_id -> (event time, offset of the message that applied
    it; None offline)."""

    def is_duplicate(self, event_id: str, offset: int | None = None) -> bool:
        """True when another event with ``event_id`` was applied (a retried send).

        The message that applied an id is not its own duplicate: redelivered, it is a replay
        (the offset fence's business), so a duplicate stays a duplicate however often the
        stream is read again. Offline (``offset`` None) any repeat is one.
        """
        first = self.seen.get(event_key(event_id))
        return first is not None and (offset is None or first[1] != offset)

    def impressions(self, offer_id: str, now: float, window_s: float) -> int:
        """Impressions of ``offer_id`` (any channel) in the window before event time ``now``.

        The window is rounded out to whole hours: an impression counts while its hour overlaps
        ``(now - window_s, now]``, so a cap errs towards showing less, never more. Exposure
        after ``now`` (clock skew between shop and API) counts too.
        """
        return _count(self.shown, offer_id, now, window_s)

    def dismissals(self, offer_id: str, now: float, window_s: float) -> int:
        """Dismissals of ``offer_id`` in the window before ``now`` (same rounding as above)."""
        return _count(self.dismissed, offer_id, now, window_s)

    @property
    def position(self) -> Position | None:
        """(partition, offset) of the last applied message: the fence (None before any)."""
        if self.partition is None or self.offset is None:
            return None
        return self.partition, self.offset

    def has_applied(self, partition: int, offset: int) -> bool:
        """True when the message at (partition, offset) is already in this profile."""
        return self.partition == partition and self.offset is not None and offset <= self.offset

    def decayed(self, at: float, half_life_s: float) -> dict[str, float]:
        """Feature weights as of event time ``at``."""
        if self.landmark is None:
            return {}
        factor = 2.0 ** ((self.landmark - at) / half_life_s)
        return {name: value * factor for name, value in self.weights.items()}

    def decayed_weight(self, name: str, at: float, half_life_s: float) -> float:
        """One feature's weight as of event time ``at`` (``decayed(...)[name]``, else 0),
        without decaying every feature."""
        if self.landmark is None or name not in self.weights:
            return 0.0
        factor: float = 2.0 ** ((self.landmark - at) / half_life_s)
        return self.weights[name] * factor

    def normalised(self) -> dict[str, float]:
        """Weights scaled to sum to 1 (the decay factor cancels out)."""
        total = sum(self.weights.values())
        if total <= 0.0:
            return {}
        return {name: value / total for name, value in self.weights.items()}


def apply_event(
    profile: Profile,
    features: Mapping[str, float],
    ts: float,
    params: ProfileParams,
    *,
    purchased_item: str | None = None,
    touched_item: str | None = None,
    shown_offer: str | None = None,
    dismissed_offer: str | None = None,
    position: Position | None = None,
    event_id: str | None = None,
) -> bool:
    """Add one event's features at event time ``ts``; False if ``position`` was applied before
    or ``event_id`` is a duplicate (:meth:`Profile.is_duplicate`).

    ``position`` is the (partition, offset) of the Kafka message; it fences replays so that a
    message delivered twice counts once. ``event_id`` does the same for an event *sent* twice
    (a client retrying a request that timed out): ids are remembered for
    ``params.dedupe_window_s`` of event time, at most ``params.dedupe_memory`` of them.
    ``shown_offer`` / ``dismissed_offer`` count an impression / dismissal of that offer in the
    event's hour. ``touched_item``: the event is an item event on it (its last-touch time moves
    to ``ts`` if that is later).

    This is the hot path of the worker and of every replay; :func:`apply_event_reference`
    says the same more plainly and is its test oracle. The differences are only in how: the
    top-N cut deletes the few lowest entries in place instead of sorting the whole profile
    (the order of the kept entries is then their insertion order), and the exposure and
    touch bookkeeping skips work that cannot change anything.
    """
    if position is not None:
        if profile.partition == position[0] and (
            profile.offset is not None and position[1] <= profile.offset
        ):
            return False
        profile.partition, profile.offset = position
    if event_id is not None:
        offset = None if position is None else position[1]
        key = event_key(event_id)
        first = profile.seen.get(key)
        if first is not None and (offset is None or first[1] != offset):  # is_duplicate
            return False
        profile.seen[key] = (ts, offset)
    landmark = profile.landmark
    if landmark is None:
        profile.landmark = landmark = ts
    exponent = (ts - landmark) / params.half_life_s
    if exponent > RENORMALISE_EXPONENT:
        factor = 2.0**-exponent
        profile.weights = {k: v * factor for k, v in profile.weights.items() if v * factor > 0.0}
        profile.landmark = ts
        exponent = 0.0
    weights = profile.weights
    if features:
        scale = 2.0**exponent
        get = weights.get
        for name, weight in features.items():
            weights[name] = get(name, 0.0) + weight * scale
    if len(weights) > params.top_n:  # also after a featureless event when top_n shrank
        _cut(weights, params.top_n)
    if purchased_item is not None:
        _remember(profile.purchases, purchased_item, ts, params.purchase_memory, latest=False)
    if touched_item is not None:
        _touch(profile.touched, touched_item, ts, params.touch_memory)
    previous_ts = profile.last_ts
    newest = ts if previous_ts is None or ts > previous_ts else previous_ts
    profile.last_ts = newest
    if shown_offer is not None or dismissed_offer is not None or profile.shown or profile.dismissed:
        _record_exposure(profile, params, previous_ts, newest, shown_offer, dismissed_offer, ts)
    if profile.seen:
        _forget_ids(profile, params)
    profile.n_events += 1
    return True


def _cut(weights: dict[str, float], top_n: int) -> None:
    """Drop the entries beyond the ``top_n`` largest, as the reference's sort by
    (-weight, name) does: the lowest weights go, and of equal weights the larger names."""
    if top_n <= 0:
        weights.clear()
        return
    extra = len(weights) - top_n
    if extra == 1:  # a new feature on a full profile, the common case: one C-level pass
        name = min(weights, key=weights.__getitem__)
        low = weights[name]
        if low == low and countOf(weights.values(), low) == 1:  # no tie, no NaN
            del weights[name]
            return
    lowest = heapq.nsmallest(extra + 1, weights.items(), key=itemgetter(1))
    if lowest[extra - 1][1] < lowest[extra][1]:  # the cut falls between two weights
        for name, _ in lowest[:extra]:
            del weights[name]
        return
    # A tie across the cut: of the tied weight keep the smallest names, like the reference.
    tied = lowest[extra][1]
    below = [name for name, value in weights.items() if value < tied]
    at = sorted(name for name, value in weights.items() if value == tied)
    keep_at = len(weights) - extra - sum(1 for value in weights.values() if value > tied)
    for name in below + at[keep_at:]:
        del weights[name]


def _touch(times: dict[str, float], item: str, ts: float, memory: int) -> None:
    """:func:`_remember` with ``latest=True``, sparing the scan for the oldest while there is
    room."""
    if memory <= 0:
        return
    old = times.pop(item, None)
    times[item] = ts if old is None or ts > old else old
    while len(times) > memory:
        # the oldest time, and of equal times the smallest name: min by (time, name), in
        # C-level passes unless times tie
        oldest = min(times, key=times.__getitem__)
        at = times[oldest]
        if at != at or countOf(times.values(), at) > 1:
            oldest = min(times.items(), key=lambda kv: (kv[1], kv[0]))[0]
        del times[oldest]


def apply_event_reference(
    profile: Profile,
    features: Mapping[str, float],
    ts: float,
    params: ProfileParams,
    *,
    purchased_item: str | None = None,
    touched_item: str | None = None,
    shown_offer: str | None = None,
    dismissed_offer: str | None = None,
    position: Position | None = None,
    event_id: str | None = None,
) -> bool:
    """The reference of :func:`apply_event`, kept as its test oracle: the same profile (the
    same entries; floats may differ in the last bits, and a pruned dict is rebuilt in weight
    order), written for clarity. Property tests compare the two on random streams.

    Add one event's features at event time ``ts``; False if ``position`` was applied before
    or ``event_id`` is a duplicate (:meth:`Profile.is_duplicate`).

    ``position`` is the (partition, offset) of the Kafka message; it fences replays so that a
    message delivered twice counts once. ``event_id`` does the same for an event *sent* twice
    (a client retrying a request that timed out): ids are remembered for
    ``params.dedupe_window_s`` of event time, at most ``params.dedupe_memory`` of them.
    ``shown_offer`` / ``dismissed_offer`` count an impression / dismissal of that offer in the
    event's hour. ``touched_item``: the event is an item event on it (its last-touch time moves
    to ``ts`` if that is later).
    """
    if position is not None:
        if profile.has_applied(*position):
            return False
        profile.partition, profile.offset = position
    if event_id is not None:
        offset = None if position is None else position[1]
        key = event_key(event_id)
        first = profile.seen.get(key)
        if first is not None and (offset is None or first[1] != offset):  # is_duplicate
            return False
        profile.seen[key] = (ts, offset)
    if profile.landmark is None:
        profile.landmark = ts
    exponent = (ts - profile.landmark) / params.half_life_s
    if exponent > RENORMALISE_EXPONENT:
        factor = 2.0**-exponent
        profile.weights = {k: v * factor for k, v in profile.weights.items() if v * factor > 0.0}
        profile.landmark = ts
        exponent = 0.0
    scale = 2.0**exponent
    weights = profile.weights
    for name, weight in features.items():
        weights[name] = weights.get(name, 0.0) + weight * scale
    if len(weights) > params.top_n:
        keep = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[: params.top_n]
        profile.weights = dict(keep)
    if purchased_item is not None:
        _remember(profile.purchases, purchased_item, ts, params.purchase_memory, latest=False)
    if touched_item is not None:
        _remember(profile.touched, touched_item, ts, params.touch_memory, latest=True)
    previous_ts = profile.last_ts
    profile.last_ts = ts if previous_ts is None else max(previous_ts, ts)
    _record_exposure(
        profile, params, previous_ts, profile.last_ts, shown_offer, dismissed_offer, ts
    )
    if profile.seen:
        _forget_ids(profile, params)
    profile.n_events += 1
    return True


def _remember(times: dict[str, float], item: str, ts: float, memory: int, *, latest: bool) -> None:
    """Record ``item`` at ``ts`` (``latest``: keep the later of the two times) and forget the
    oldest entries beyond ``memory`` (ties: the smaller id goes first)."""
    if memory <= 0:
        return
    old = times.pop(item, None)
    times[item] = ts if old is None or not latest else max(old, ts)
    while len(times) > memory:
        oldest = min(times.items(), key=lambda kv: (kv[1], kv[0]))[0]
        del times[oldest]


def _forget_ids(profile: Profile, params: ProfileParams) -> None:
    """Drop event ids older than the dedupe window (in event time), then the oldest beyond the
    memory: a function of the applied events alone, so a replay keeps the same ids."""
    assert profile.last_ts is not None
    cutoff = profile.last_ts - params.dedupe_window_s
    seen = profile.seen
    for event_id in [i for i, (t, _) in seen.items() if t < cutoff]:
        del seen[event_id]
    while len(seen) > params.dedupe_memory:
        del seen[min(seen, key=lambda i: (seen[i][0], i))]


def _bucket(ts: float) -> int:
    return int(ts // EXPOSURE_BUCKET_S)


def _count(counts: ExposureCounts, offer_id: str, now: float, window_s: float) -> int:
    per_hour = counts.get(offer_id)
    if not per_hour:
        return 0
    first = _bucket(now - window_s)
    return sum(n for bucket, n in per_hour.items() if bucket >= first)


def _record_exposure(
    profile: Profile,
    params: ProfileParams,
    previous_ts: float | None,
    newest_ts: float,
    shown_offer: str | None,
    dismissed_offer: str | None,
    ts: float,
) -> None:
    """Count the event's exposure and drop hours older than ``exposure_keep_s``.

    The cut-off follows the newest event time, never the wall clock, so the kept exposure is a
    function of the applied events alone (in any order) and a replay rebuilds it exactly.
    """
    cutoff = _bucket(newest_ts) - math.ceil(params.exposure_keep_s / EXPOSURE_BUCKET_S)
    moved = previous_ts is None or _bucket(previous_ts) != _bucket(newest_ts)
    bucket = _bucket(ts)
    for counts, offer_id in ((profile.shown, shown_offer), (profile.dismissed, dismissed_offer)):
        added = False
        if offer_id is not None and bucket >= cutoff:
            per_hour = counts.setdefault(offer_id, {})
            per_hour[bucket] = per_hour.get(bucket, 0) + 1
            added = True
        if counts and (moved or added):
            _prune(counts, cutoff, params.exposure_memory)


def _prune(counts: ExposureCounts, cutoff: int, memory: int) -> None:
    for offer_id in list(counts):
        per_hour = counts[offer_id]
        for bucket in [b for b in per_hour if b < cutoff]:
            del per_hour[bucket]
        if not per_hour:
            del counts[offer_id]
    size = sum(len(per_hour) for per_hour in counts.values())
    if size > memory:
        entries = sorted((b, o) for o, per_hour in counts.items() for b in per_hour)
        for bucket, offer_id in entries[: size - memory]:
            del counts[offer_id][bucket]
            if not counts[offer_id]:
                del counts[offer_id]


def merged(profiles: Sequence[Profile], half_life_s: float) -> Profile:
    """One profile from a person's profiles (a known user's and the anonymous ids linked to
    it), for serving only: never stored, so each stored profile keeps its own offset fence and
    a replay into any of them is fenced as before.

    Weights are moved to the newest landmark (forward decay: a weight stored at landmark ``L``
    is worth ``w * 2^((L - L')/h)`` at ``L'``) and added; purchases and item touches keep the
    latest time per item, exposure counts add up. The fence fields (offset, dedupe ids) are
    the first profile's.
    """
    present = [p for p in profiles if p.landmark is not None or p.purchases or p.shown]
    if not present:
        return profiles[0] if profiles else Profile()
    first = profiles[0]
    landmarks = [p.landmark for p in present if p.landmark is not None]
    landmark = max(landmarks) if landmarks else None
    weights: dict[str, float] = {}
    purchases: dict[str, float] = {}
    touched: dict[str, float] = {}
    shown: ExposureCounts = {}
    dismissed: ExposureCounts = {}
    for profile in present:
        if profile.landmark is not None and landmark is not None:
            factor = 2.0 ** ((profile.landmark - landmark) / half_life_s)
            for name, value in profile.weights.items():
                weights[name] = weights.get(name, 0.0) + value * factor
        for mine, theirs in ((purchases, profile.purchases), (touched, profile.touched)):
            for item, ts in theirs.items():
                mine[item] = max(ts, mine.get(item, ts))
        for total, counts in ((shown, profile.shown), (dismissed, profile.dismissed)):
            for offer, per_hour in counts.items():
                into = total.setdefault(offer, {})
                for hour, n in per_hour.items():
                    into[hour] = into.get(hour, 0) + n
    times = [p.last_ts for p in present if p.last_ts is not None]
    return Profile(
        weights=weights,
        landmark=landmark,
        last_ts=max(times) if times else None,
        partition=first.partition,
        offset=first.offset,
        n_events=sum(p.n_events for p in present),
        purchases=purchases,
        touched=touched,
        shown=shown,
        dismissed=dismissed,
        seen=dict(first.seen),
    )
