"""The user's moment of truth, derived from the live profile.

=============  ===============================================================================
``stimulus``   nothing known yet (no profile, or no interest feature)
``zmot``       researching: searches, page views (and nothing below)
``fmot``       a recent cart (its decayed ``kind:add_to_cart`` weight >= ``active``)
``smot``       bought within ``smot_window_s`` (first use: support, accessories)
``umot``       a recent review or rating (sharing), unless a purchase is the last event
=============  ===============================================================================

The profile keeps ``kind:<type>`` features (decayed like every feature) and the purchase times;
those are all the stage needs, so the stage is as live and replay-safe as the profile itself.
"""

from __future__ import annotations

from recommender.core.profile import Profile

STIMULUS, ZMOT, FMOT, SMOT, UMOT = "stimulus", "zmot", "fmot", "smot", "umot"


def last_purchase(profile: Profile | None) -> float | None:
    """Event time of the user's most recent purchase, if any is remembered."""
    if profile is None or not profile.purchases:
        return None
    return max(profile.purchases.values())


ACTIVE_KIND_WEIGHT = 0.05
"""A ``kind:`` feature counts while its decayed weight is at least this: with the default
``kind_feature`` of 0.1, one event within about one half-life."""


def stage_of(
    profile: Profile | None,
    now: float,
    smot_window_s: float,
    half_life_s: float,
    active: float = ACTIVE_KIND_WEIGHT,
) -> str:
    """The journey stage of ``profile`` at ``now`` (see the module table)."""
    if profile is None or not any(w > 0.0 for w in profile.weights.values()):
        return STIMULUS
    at = max(now, profile.last_ts or now)
    bought = last_purchase(profile)
    recent_purchase = bought is not None and now - bought < smot_window_s
    purchase_is_last = bought is not None and bought == profile.last_ts
    if profile.decayed_weight("kind:review", at, half_life_s) >= active and not (
        recent_purchase and purchase_is_last
    ):
        return UMOT
    if recent_purchase:
        return SMOT
    if profile.decayed_weight("kind:add_to_cart", at, half_life_s) >= active:
        return FMOT
    return ZMOT
