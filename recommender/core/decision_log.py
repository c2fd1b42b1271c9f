"""The decision log on Kafka (``ZMOT_DECISIONS_TOPIC``) and its join with feedback (pure).

Each answer's decision is one JSON object (one line, compact, ASCII)::

    {"decision_id", "user_id", "ts", "placement", "stage", "fallback", "experiment", "arm",
     "model_version", "offers": [{"offer_id", "item_id", "policy", "probability"}, ...]}

and a Kafka record holds one or more of them, newline-separated (JSON lines,
:func:`encode_record`; read back by :func:`decode_record`). The API gathers the answers of a
few milliseconds into one record without a key (a record mixes users); records written before
that hold one decision (keyed by user), which is the same text as a record of one entry, so
one reader takes both. Nothing downstream needs one person's decisions in order: the join
below orders them by ``ts`` (ties by ``decision_id``), never by their place in the log.

``probability`` is the exact chance the logging policy put that offer in that slot
(:mod:`recommender.core.exploration`). :func:`logged_rewards` turns the log and the events
that followed into the rows off-policy evaluation reads (:class:`~recommender.core.ope.Logged`:
the first slot's offer and probability, and whether it earned the reward):

- ``click``: a ``click`` on that offer naming the decision's ``decision_id``, or, naming
  none, by the same person within the window after it, when it is the latest decision of
  theirs that showed that offer (the rule of the worker's attribution);
- ``conversion``: a ``purchase`` of the offer's item by the same person within the window
  after the decision, when it is the latest such decision (last touch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from recommender.core.errors import InvalidEventError
from recommender.core.events import Event
from recommender.core.ope import Logged

Reward = Literal["click", "conversion"]

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""``json.dumps(value, separators=(",", ":"))`` without building an encoder per call (one
log message per answer)."""


@dataclass(frozen=True)
class LoggedSlot:
    offer_id: str
    item_id: str
    policy: str
    probability: float


@dataclass(frozen=True)
class LoggedDecision:
    """One message of the decision log."""

    decision_id: str
    user_id: str
    ts: float
    offers: tuple[LoggedSlot, ...]
    placement: str | None = None
    stage: str | None = None
    fallback: bool = False
    experiment: str | None = None
    arm: str | None = None
    model_version: str | None = None

    def to_json(self) -> bytes:
        return _ENCODE(
            {
                "decision_id": self.decision_id,
                "user_id": self.user_id,
                "ts": self.ts,
                "placement": self.placement,
                "stage": self.stage,
                "fallback": self.fallback,
                "experiment": self.experiment,
                "arm": self.arm,
                "model_version": self.model_version,
                "offers": [
                    {
                        "offer_id": s.offer_id,
                        "item_id": s.item_id,
                        "policy": s.policy,
                        "probability": s.probability,
                    }
                    for s in self.offers
                ],
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> LoggedDecision:
        """A logged decision; :class:`InvalidEventError` names what is wrong."""
        try:
            data: dict[str, Any] = json.loads(raw)
            offers = tuple(
                LoggedSlot(
                    str(o["offer_id"]), str(o["item_id"]), str(o["policy"]), float(o["probability"])
                )
                for o in data["offers"]
            )
            return cls(
                decision_id=str(data["decision_id"]),
                user_id=str(data["user_id"]),
                ts=float(data["ts"]),
                offers=offers,
                placement=_opt(data.get("placement")),
                stage=_opt(data.get("stage")),
                fallback=bool(data.get("fallback", False)),
                experiment=_opt(data.get("experiment")),
                arm=_opt(data.get("arm")),
                model_version=_opt(data.get("model_version")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidEventError(f"not a logged decision: {exc!r}") from None


def encode_record(lines: Sequence[bytes]) -> bytes:
    """One Kafka record of the decision log from its entries' JSON (``to_json()`` of a
    :class:`LoggedDecision` or a :class:`DecisionLine`), one per line (no newline inside an
    entry: the encoder escapes every control character)."""
    return b"\n".join(lines)


def decode_record(raw: bytes | str) -> tuple[list[LoggedDecision], list[str]]:
    """The decisions of one record (a single decision, as records written before batching
    were, or JSON lines of them), and a reason per line that is not a logged decision
    (``line N: ...``); blank lines are skipped."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    decisions: list[LoggedDecision] = []
    bad: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            decisions.append(LoggedDecision.from_json(line))
        except InvalidEventError as exc:
            bad.append(f"line {number}: {exc}")
    if not decisions and not bad:
        bad.append("empty record")
    return decisions, bad


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def logged_rewards(
    decisions: Sequence[LoggedDecision],
    events: Iterable[Event],
    *,
    reward: Reward,
    window_s: float,
) -> list[Logged]:
    """One :class:`Logged` row per decision that showed an offer, in log order (see the module
    doc for what earns the reward)."""
    shown = [d for d in decisions if d.offers]
    by_id = {d.decision_id: d for d in shown}
    by_user: dict[str, list[LoggedDecision]] = {}
    for d in shown:
        by_user.setdefault(d.user_id, []).append(d)
    earned: set[str] = set()
    for event in events:
        if reward == "click" and event.type == "click" and event.offer_id is not None:
            if event.decision_id is not None:  # named: that decision or none (not in the log)
                named = by_id.get(event.decision_id)
                if (
                    named is not None
                    and named.user_id == event.user_id
                    and named.offers[0].offer_id == event.offer_id
                ):
                    earned.add(named.decision_id)
                continue
            field, value = "offer_id", event.offer_id
        elif reward == "conversion" and event.type == "purchase" and event.item_id is not None:
            field, value = "item_id", event.item_id
        else:
            continue
        latest = _latest(by_user.get(event.user_id, ()), event.ts or 0.0, window_s, field, value)
        if latest is not None and getattr(latest.offers[0], field) == value:
            earned.add(latest.decision_id)
    return [
        Logged(d.offers[0].offer_id, d.offers[0].probability, float(d.decision_id in earned))
        for d in shown
    ]


def _latest(
    candidates: Iterable[LoggedDecision], ts: float, window_s: float, field: str, value: str
) -> LoggedDecision | None:
    """The latest decision at most ``window_s`` before ``ts`` with a slot whose ``field``
    (offer_id or item_id) is ``value``; of two at the same time, the greater ``decision_id``
    (so the answer does not depend on the order the log was read in)."""
    best: LoggedDecision | None = None
    for d in candidates:
        if not 0.0 <= ts - d.ts <= window_s or (
            best is not None and (d.ts, d.decision_id) <= (best.ts, best.decision_id)
        ):
            continue
        if any(getattr(s, field) == value for s in d.offers):
            best = d
    return best


def decision_entry(
    decision_id: str,
    user_id: str,
    ts: float,
    offers: Sequence[tuple[str, str, str, float]],
    context: Mapping[str, Any],
) -> LoggedDecision:
    """A log entry from an answer: ``offers`` as (offer id, item id, policy, probability) per
    slot; ``context`` the optional fields (placement, stage, fallback, experiment, arm,
    model_version)."""
    return LoggedDecision(
        decision_id,
        user_id,
        ts,
        tuple(LoggedSlot(*o) for o in offers),
        placement=context.get("placement"),
        stage=context.get("stage"),
        fallback=bool(context.get("fallback", False)),
        experiment=context.get("experiment"),
        arm=context.get("arm"),
        model_version=context.get("model_version"),
    )


class DecisionLine:
    """A decision as the API queues it for the log: the answer's fields as they are, encoded
    only when the log sends them (:meth:`to_json`, the bytes of
    :meth:`LoggedDecision.to_json` for the same fields, written directly instead of through a
    dict and the generic encoder: a few microseconds per answer instead of about ten, and no
    dataclass built while the answer is being made)."""

    __slots__ = (
        "decision_id",
        "user_id",
        "ts",
        "offers",
        "placement",
        "stage",
        "fallback",
        "experiment",
        "arm",
        "model_version",
    )

    def __init__(
        self,
        decision_id: str,
        user_id: str,
        ts: float,
        offers: Sequence[tuple[str, str, str, float]],
        placement: str | None = None,
        stage: str | None = None,
        fallback: bool = False,
        experiment: str | None = None,
        arm: str | None = None,
        model_version: str | None = None,
    ) -> None:
        self.decision_id = decision_id
        self.user_id = user_id
        self.ts = ts
        self.offers = offers
        self.placement = placement
        self.stage = stage
        self.fallback = fallback
        self.experiment = experiment
        self.arm = arm
        self.model_version = model_version

    def to_json(self) -> bytes:
        slots = ",".join(
            [
                f'{{"offer_id":{_text(o)},"item_id":{_text(i)},"policy":{_text(p)},'
                f'"probability":{_number(q)}}}'
                for o, i, p, q in self.offers
            ]
        )
        return (
            f'{{"decision_id":{_text(self.decision_id)},"user_id":{_text(self.user_id)},'
            f'"ts":{_number(self.ts)},"placement":{_text(self.placement)},'
            f'"stage":{_text(self.stage)},"fallback":{"true" if self.fallback else "false"},'
            f'"experiment":{_text(self.experiment)},"arm":{_text(self.arm)},'
            f'"model_version":{_text(self.model_version)},"offers":[{slots}]}}'
        ).encode()

    def decision(self) -> LoggedDecision:
        """The same decision as :func:`decision_entry` makes it."""
        return decision_entry(
            self.decision_id,
            self.user_id,
            self.ts,
            self.offers,
            {
                "placement": self.placement,
                "stage": self.stage,
                "fallback": self.fallback,
                "experiment": self.experiment,
                "arm": self.arm,
                "model_version": self.model_version,
            },
        )


def _text(value: Any) -> str:
    """``value`` as the log's encoder writes it (a str escaped to ASCII; None as null)."""
    if value.__class__ is str:
        return encode_basestring_ascii(value)
    return "null" if value is None else _ENCODE(value)


def _number(value: Any) -> str:
    """A finite float as the log's encoder writes it (``float.__repr__``); anything else
    through that encoder."""
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return _ENCODE(value)
