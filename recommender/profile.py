"""The live interest profile of one user and the one function that updates it.

The stream worker, training and evaluation all call :func:`apply_event`; nothing else changes a
profile, so live and offline profiles agree by construction.

Decay is *forward decay* on event time: a feature's stored value is
``sum(weight_e * 2**((t_e - L) / h))`` for a per-profile landmark ``L``, so applying an event only
adds to fields, and the weight at time ``t`` is ``stored * 2**((L - t) / h)``. All features share
that factor, so ranking and L1-normalised scoring need no decay at read time at all. When the
exponent grows large the profile is rescaled to a new landmark to keep the numbers finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RENORMALISE_EXPONENT = 32.0
"""Rescale to a new landmark once an event is this many half-lives past it (2**32 ~ 4e9)."""


@dataclass(frozen=True)
class ProfileParams:
    """How profiles decay and how much they keep."""

    half_life_s: float = 72 * 3600.0
    top_n: int = 64
    purchase_memory: int = 32


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

    def has_applied(self, partition: int, offset: int) -> bool:
        """True when the message at (partition, offset) is already in this profile."""
        return self.partition == partition and self.offset is not None and offset <= self.offset

    def decayed(self, at: float, half_life_s: float) -> dict[str, float]:
        """Feature weights as of event time ``at``."""
        if self.landmark is None:
            return {}
        factor = 2.0 ** ((self.landmark - at) / half_life_s)
        return {name: value * factor for name, value in self.weights.items()}

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
    position: tuple[int, int] | None = None,
) -> bool:
    """Add one event's features at event time ``ts``; False if ``position`` was applied before.

    ``position`` is the (partition, offset) of the Kafka message; it fences replays so that an
    event delivered twice counts once.
    """
    if position is not None:
        if profile.has_applied(*position):
            return False
        profile.partition, profile.offset = position
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
    if purchased_item is not None and params.purchase_memory > 0:
        profile.purchases.pop(purchased_item, None)
        profile.purchases[purchased_item] = ts
        while len(profile.purchases) > params.purchase_memory:
            oldest = min(profile.purchases.items(), key=lambda kv: (kv[1], kv[0]))[0]
            del profile.purchases[oldest]
    profile.last_ts = ts if profile.last_ts is None else max(profile.last_ts, ts)
    profile.n_events += 1
    return True


# --- the stored form: one Redis hash per user -------------------------------------------------
# f:<feature> -> stored (landmark-scaled) weight; b:<item> -> purchase time; _L landmark;
# _t last event time; _pos "partition:offset" of the last applied message; _n events applied.
# Floats are written with repr(), which round-trips exactly.

POSITION_FIELD = "_pos"


def position_token(profile: Profile) -> str:
    """The fence value stored in ``_pos`` (empty for a profile never written)."""
    if profile.partition is None or profile.offset is None:
        return ""
    return f"{profile.partition}:{profile.offset}"


def to_hash(profile: Profile) -> dict[str, str]:
    """The Redis hash fields of a profile."""
    out = {f"f:{name}": repr(value) for name, value in profile.weights.items()}
    out.update({f"b:{item}": repr(ts) for item, ts in profile.purchases.items()})
    if profile.landmark is not None:
        out["_L"] = repr(profile.landmark)
    if profile.last_ts is not None:
        out["_t"] = repr(profile.last_ts)
    token = position_token(profile)
    if token:
        out[POSITION_FIELD] = token
    out["_n"] = str(profile.n_events)
    return out


def from_hash(mapping: Mapping[bytes | str, bytes | str]) -> Profile:
    """A profile from Redis hash fields (bytes or text); the inverse of :func:`to_hash`."""
    profile = Profile()
    for raw_key, raw_value in mapping.items():
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
        if key.startswith("f:"):
            profile.weights[key[2:]] = float(value)
        elif key.startswith("b:"):
            profile.purchases[key[2:]] = float(value)
        elif key == "_L":
            profile.landmark = float(value)
        elif key == "_t":
            profile.last_ts = float(value)
        elif key == POSITION_FIELD:
            part, _, off = value.partition(":")
            profile.partition, profile.offset = int(part), int(off)
        elif key == "_n":
            profile.n_events = int(value)
    return profile
