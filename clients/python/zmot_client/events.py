"""Events as the client sends them: each with an ``event_id`` and a ``ts`` fixed before the
first attempt, so a retried request carries the very same events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

Event = Mapping[str, Any]
"""One event of the contract (README, "Event contract"): ``user_id``, ``type`` and fields."""


def prepared(events: Iterable[Event], now_ms: int | None = None) -> list[dict[str, Any]]:
    """Copies of ``events``, each with an ``event_id`` (a UUID4 unless given) and a ``ts``
    (now, in epoch milliseconds, unless given)."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    out = []
    for event in events:
        row = dict(event)
        row.setdefault("event_id", str(uuid.uuid4()))
        row.setdefault("ts", stamp)
        out.append(row)
    return out
