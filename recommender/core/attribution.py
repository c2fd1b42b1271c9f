"""Attribution of feedback to experiment arms, and the per-arm figures (pure, no I/O).

The API records every decision made inside an experiment (:class:`DecisionRecord`: who, when,
which experiment and arm, which offers with their items and values) before it answers, so the
decision exists before any event that refers to it. The worker then joins the stream to it:

- an ``impression``, ``click`` or ``dismiss`` carrying the answer's ``decision_id`` (and one
  of its offers) counts for that decision's arm; one without a ``decision_id`` counts for
  the latest decision that offered that offer to the same person within the window before
  it (event time);
- an ``add_to_cart`` or ``purchase`` of an item that a decision offered to the same person
  within ``ZMOT_ATTRIBUTION_HOURS`` before (event time) counts for the latest such decision
  (last touch): a cart as a cart, a purchase as a conversion worth the offer's value.

The increments of a batch depend only on its events and on decision records, which never
change, so they ride on the per-partition offset-fenced counters of
:mod:`recommender.core.feedback`: a redelivered message counts nothing twice.

Figures per arm: impressions, CTR and conversion rate (per impression) with 95% Wilson
intervals, revenue per impression with a 95% normal interval (from the counted sum of squares),
and a verdict of each arm against the first (the control).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recommender.core.events import Event
from recommender.core.feedback import ARM_COUNTERS, CounterKey

OFFER_EVENT_COUNTER = {
    "impression": "arm_impressions",
    "click": "arm_clicks",
    "dismiss": "arm_dismissals",
}

Z95 = 1.959963984540054
SEPARATOR = "|"
"""Between experiment and arm in a counter's subject (refused in their names)."""


def arm_subject(experiment: str, arm: str) -> str:
    return f"{experiment}{SEPARATOR}{arm}"


@dataclass(frozen=True)
class DecisionRecord:
    """What attribution needs of one decision: who, when, where and which offers."""

    decision_id: str
    user_id: str
    ts: float
    experiment: str
    arm: str
    offers: Mapping[str, tuple[str, float]]
    """offer id -> (item id, offer value)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.decision_id,
                "u": self.user_id,
                "ts": self.ts,
                "e": self.experiment,
                "a": self.arm,
                "o": {k: [item, value] for k, (item, value) in self.offers.items()},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DecisionRecord:
        data: dict[str, Any] = json.loads(text)
        return cls(
            str(data["id"]),
            str(data["u"]),
            float(data["ts"]),
            str(data["e"]),
            str(data["a"]),
            {str(k): (str(v[0]), float(v[1])) for k, v in data["o"].items()},
        )

    def offer_of(self, item_id: str) -> float | None:
        """The value of this decision's offer of ``item_id`` (None: it offered no such item)."""
        values = [value for item, value in self.offers.values() if item == item_id]
        return max(values) if values else None


def _add(out: dict[CounterKey, int], kind: str, subject: str, amount: int = 1) -> None:
    key = CounterKey(kind, subject)
    out[key] = out.get(key, 0) + amount


def attribution_increments(
    events: Iterable[Event],
    decisions: Mapping[str, DecisionRecord],
    by_user: Mapping[str, Sequence[DecisionRecord]],
    window_s: float,
) -> dict[CounterKey, int]:
    """What ``events`` add to the per-arm counters (see the module doc).

    ``decisions``: the records of the decision ids the offer events name (missing ones count
    nothing: expired, or a decision outside any experiment). ``by_user``: each person's
    records, for carts, purchases and offer events without a decision id.
    """
    out: dict[CounterKey, int] = {}
    for event in events:
        kind = OFFER_EVENT_COUNTER.get(event.type)
        ts = event.ts or 0.0
        if kind is not None:
            if event.decision_id is not None:
                named = decisions.get(event.decision_id)
                record = named if named is not None and named.user_id == event.user_id else None
            else:  # joined by person and offer: the latest decision that showed it
                shown = _latest(
                    (r, 0.0)
                    for r in by_user.get(event.user_id, ())
                    if 0.0 <= ts - r.ts <= window_s and event.offer_id in r.offers
                )
                record = None if shown is None else shown[0]
            if record is not None and event.offer_id in record.offers:
                _add(out, kind, arm_subject(record.experiment, record.arm))
            continue
        if event.type not in ("add_to_cart", "purchase") or event.item_id is None:
            continue
        touched = _latest(
            (r, value)
            for r in by_user.get(event.user_id, ())
            if 0.0 <= ts - r.ts <= window_s and (value := r.offer_of(event.item_id)) is not None
        )
        if touched is None:
            continue
        record, value = touched
        subject = arm_subject(record.experiment, record.arm)
        if event.type == "add_to_cart":
            _add(out, "arm_carts", subject)
        else:
            cents = round(value * 100)
            _add(out, "arm_conversions", subject)
            _add(out, "arm_revenue", subject, cents)
            _add(out, "arm_revenue_sq", subject, cents * cents)
    return out


def _latest(
    candidates: Iterable[tuple[DecisionRecord, float]],
) -> tuple[DecisionRecord, float] | None:
    """The latest decision (ties: the larger id) of (decision, value) pairs, or None."""
    return max(candidates, key=lambda c: (c[0].ts, c[0].decision_id), default=None)


def arm_counters(experiment: str, arm: str) -> list[CounterKey]:
    subject = arm_subject(experiment, arm)
    return [CounterKey(kind, subject) for kind in ARM_COUNTERS]


# --- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """A proportion with its 95% Wilson interval (None before any trial)."""

    successes: int
    trials: int

    @property
    def value(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.successes, self.trials)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None for no trials)."""
    if trials <= 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ArmFigures:
    """One arm's counters and the figures derived from them."""

    arm: str
    impressions: int = 0
    clicks: int = 0
    dismissals: int = 0
    carts: int = 0
    conversions: int = 0
    revenue_cents: int = 0
    revenue_sq_cents: int = 0

    @property
    def ctr(self) -> Rate:
        return Rate(min(self.clicks, self.impressions), self.impressions)

    @property
    def conversion_rate(self) -> Rate:
        return Rate(min(self.conversions, self.impressions), self.impressions)

    @property
    def revenue(self) -> float:
        return self.revenue_cents / 100.0

    @property
    def revenue_per_impression(self) -> tuple[float, tuple[float, float]] | None:
        """Mean revenue per impression and its 95% normal interval (each impression's revenue
        is the value of its conversions, 0 for most)."""
        n = self.impressions
        if n <= 0:
            return None
        mean = self.revenue_cents / n / 100.0
        mean_sq = self.revenue_sq_cents / n / 10_000.0
        var = max(0.0, mean_sq - mean * mean)
        half = Z95 * math.sqrt(var / n)
        return mean, (mean - half, mean + half)

    def to_dict(self) -> dict[str, Any]:
        rpi = self.revenue_per_impression
        return {
            "arm": self.arm,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "dismissals": self.dismissals,
            "carts": self.carts,
            "conversions": self.conversions,
            "revenue": self.revenue,
            "ctr": self.ctr.value,
            "ctr_95": self.ctr.interval,
            "conversion_rate": self.conversion_rate.value,
            "conversion_rate_95": self.conversion_rate.interval,
            "revenue_per_impression": None if rpi is None else rpi[0],
            "revenue_per_impression_95": None if rpi is None else rpi[1],
        }


def arm_figures(arm: str, counters: Mapping[str, int]) -> ArmFigures:
    """An arm's figures from its counters by kind (:data:`ARM_COUNTERS`)."""
    return ArmFigures(
        arm,
        counters.get("arm_impressions", 0),
        counters.get("arm_clicks", 0),
        counters.get("arm_dismissals", 0),
        counters.get("arm_carts", 0),
        counters.get("arm_conversions", 0),
        counters.get("arm_revenue", 0),
        counters.get("arm_revenue_sq", 0),
    )


def verdict(control: Rate, challenger: Rate, name: str = "B") -> str:
    """A plain verdict on two rates: better, worse, or how many more impressions each arm
    would need to tell a difference of the size seen (two-sided 5%, power 80%)."""
    p1, p2 = control.value, challenger.value
    if p1 is None or p2 is None:
        return "no data yet"
    se = math.sqrt(p1 * (1 - p1) / control.trials + p2 * (1 - p2) / challenger.trials)
    diff = p2 - p1
    if se > 0 and abs(diff) > Z95 * se:
        return f"{name} better" if diff > 0 else f"{name} worse"
    if diff == 0:
        return "no difference yet"
    needed = (Z95 + 0.8416) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (diff * diff)
    more = max(0, math.ceil(needed) - min(control.trials, challenger.trials))
    return f"no difference yet, need ~{more} more impressions per arm"


def experiment_report(name: str, figures: list[ArmFigures]) -> dict[str, Any]:
    """The report: each arm's figures and, for every arm after the first, its verdicts on
    CTR and conversion rate against the first (the control)."""
    control = figures[0]
    arms = []
    for f in figures:
        row = f.to_dict()
        if f is not control:
            row["verdict_ctr"] = verdict(control.ctr, f.ctr, f.arm)
            row["verdict_conversion"] = verdict(control.conversion_rate, f.conversion_rate, f.arm)
        arms.append(row)
    return {"experiment": name, "control": control.arm, "arms": arms}
