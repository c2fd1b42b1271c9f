"""What a person allowed and asked for: consent to profiling, erasure, and what follows from it.

Stored per person under a hash of the user id (:func:`person_hash`), so the erasure record that
outlives everything else keeps no raw id. Two facts:

- ``erased_at``: the time of the last erasure. Events with an event time up to it are dropped
  by the worker for ever (a replay from offset 0, a new consumer group or a rebuild of Redis
  from the topic cannot bring the profile back); later events build a new profile.
- ``profiling``: the person's recorded choice (None: no choice, the default applies). Without
  consent the worker drops the person's events, no profile is kept, and answers are not
  personalised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from recommender.core.events import Event
from recommender.core.reasons import say
from recommender.core.scoring import Decision

Withheld = Literal["erased", "no_consent"]
WITHHELD_REASONS: tuple[Withheld, ...] = ("erased", "no_consent")


def person_hash(user_id: str) -> str:
    """SHA-256 (hex) of the user id's UTF-8 bytes: the key of a person's privacy record.

    A hash hides an id only as well as the id is hard to guess: for e-mail addresses or counters
    it is pseudonymous (the shop can recompute it), which is what erasure needs; it is not
    anonymous.
    """
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PrivacyState:
    """A person's stored privacy facts (both None for someone who never chose or was erased)."""

    erased_at: float | None = None
    profiling: bool | None = None

    def consents(self, default_granted: bool) -> bool:
        """Whether the person's events may build a profile."""
        return default_granted if self.profiling is None else self.profiling

    def withholds(self, event_ts: float, default_granted: bool) -> Withheld | None:
        """Why an event at ``event_ts`` must not reach the profile (None: it may)."""
        if self.erased_at is not None and event_ts <= self.erased_at:
            return "erased"
        if not self.consents(default_granted):
            return "no_consent"
        return None


NO_STATE = PrivacyState()


def without_personal_reasons(decision: Decision, lang: str) -> Decision:
    """The decision with every offer's reasons replaced by one that quotes nothing personal.

    For keys with ``reasons: generic`` (ad servers, third parties): the offers stay the same,
    but no search, viewed item or purchase of the person is named.
    """
    if decision.fallback:
        return decision  # popular offers: their reasons are about other shoppers already
    generic = say(lang, "chosen")
    offers = [replace(s, reasons=[generic]) for s in decision.offers]
    return replace(decision, offers=offers)


def allowed_events(
    events: Sequence[Event], states: Mapping[str, PrivacyState], default_granted: bool
) -> tuple[list[Event], int]:
    """The events a person's privacy state lets into training or evaluation, and how many were
    left out: the worker's rule (:meth:`PrivacyState.withholds`) applied to an event file. An
    event without a time counts as before any erasure."""
    kept: list[Event] = []
    for event in events:
        state = states.get(event.user_id, NO_STATE)
        if state.withholds(event.ts if event.ts is not None else 0.0, default_granted) is None:
            kept.append(event)
    return kept, len(events) - len(kept)
