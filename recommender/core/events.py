"""The event contract: what shops, apps and ad servers send, validated in one place.

Used by the API (HTTP 422 naming the field), by ``zmot replay`` (bad lines reported) and by the
stream worker (bad messages to the dead-letter topic with the reason), so all three accept and
reject exactly the same events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recommender.core.errors import ConfigError, InvalidEventError

EventType = Literal[
    "page_view", "search", "add_to_cart", "purchase", "impression", "click", "dismiss", "review"
]
Channel = Literal["web", "app", "email", "store", "ad"]

ITEM_EVENTS = frozenset({"page_view", "add_to_cart", "purchase", "review"})
OFFER_EVENTS = frozenset({"impression", "click", "dismiss"})

# Event times outside this range are rejected as impossible: a value in seconds sent where
# milliseconds are expected lands in January 1970 and is caught here.
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_TS = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


def parse_ts(value: Any) -> float:
    """Event time in epoch seconds from ISO-8601 text or epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("expected ISO-8601 text or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("must be finite")
        seconds = float(value) / 1000.0
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not ISO-8601 or epoch milliseconds: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    else:
        raise ValueError("expected ISO-8601 text or epoch milliseconds")
    if not MIN_TS <= seconds < MAX_TS:
        raise ValueError("impossible time (before 2000 or after 2100); epoch values are millis")
    return seconds


# ISO-8601 text that parse_ts accepts for any offset: years 2001-2098 (an offset cannot move
# them out of 2000-2100), days 01-28 (valid in every month), optional fraction and zone.
TS_TEXT_PATTERN = (
    r"^20(0[1-9]|[1-8][0-9]|9[0-8])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{3}|\.[0-9]{6})?)?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?$"
)


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of one event as strict as :class:`Event`'s validation, for the OpenAPI
    document: one variant per type with that type's required field, ``ts`` as ISO-8601 text
    or epoch milliseconds within the accepted years, a search query with a non-blank
    character. (A document looser than the validation makes generated "valid" events fail.)"""
    base = Event.model_json_schema(mode="validation")
    properties = dict(base["properties"])
    properties["ts"] = {
        "anyOf": [
            {"type": "string", "pattern": TS_TEXT_PATTERN},
            {"type": "number", "minimum": MIN_TS * 1000, "exclusiveMaximum": MAX_TS * 1000},
            {"type": "null"},
        ],
        "description": "ISO-8601 text (UTC if no zone) or epoch milliseconds; default: the "
        "Kafka record time",
    }
    properties["query"] = {**properties["query"], "pattern": r"\S"}
    needs = {kind: "item_id" for kind in ITEM_EVENTS} | {kind: "offer_id" for kind in OFFER_EVENTS}
    needs["search"] = "query"
    variants = []
    for kind in EventType.__args__:  # type: ignore[attr-defined]
        required = ["user_id", "type", *([needs[kind]] if kind in needs else [])]
        own = dict(properties)
        own["type"] = {"const": kind}
        for name in required[2:]:  # a required field may not be null
            kept = {k: v for k, v in own[name].items() if k not in ("anyOf", "default")}
            own[name] = kept | _non_null(own[name])
        variants.append(
            {"title": f"{kind} event", "type": "object", "properties": own, "required": required}
        )
    return {"title": "Event", "oneOf": variants}


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an ``anyOf: [X, null]`` property (the property itself if none)."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            return dict(branch)
    return {}


class Event(BaseModel):
    """One browsing or feedback event; ``ts`` is held in epoch seconds."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    type: EventType
    ts: float | None = Field(None, strict=False)
    item_id: str | None = Field(None, min_length=1, max_length=256)
    query: str | None = Field(None, min_length=1, max_length=512)
    offer_id: str | None = Field(None, min_length=1, max_length=256)
    placement: str | None = Field(None, min_length=1, max_length=128)
    rating: int | None = Field(None, ge=1, le=5)
    channel: Channel | None = None
    event_id: str | None = Field(None, min_length=1, max_length=128)
    decision_id: str | None = Field(None, min_length=1, max_length=64)
    """On impression, click and dismiss: the ``decision_id`` of the answer that showed the
    offer, which attributes the event to the answer's experiment arm."""

    @field_validator("ts", mode="before")
    @classmethod
    def _ts(cls, value: Any) -> float | None:
        return None if value is None else parse_ts(value)

    @field_validator("rating", mode="before")
    @classmethod
    def _whole_rating(cls, value: Any) -> Any:
        """JSON has one number type: 4.0 is the integer 4 (4.5, "4" and true stay errors)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @model_validator(mode="after")
    def _fields_for_type(self) -> Event:
        if self.type in ITEM_EVENTS and self.item_id is None:
            raise _missing("item_id", self.type)
        if self.type == "search" and (self.query is None or not self.query.strip()):
            raise _missing("query", self.type)
        if self.type in OFFER_EVENTS and self.offer_id is None:
            raise _missing("offer_id", self.type)
        return self

    def with_ts(self, ts: float) -> Event:
        """The same event with ``ts`` set (e.g. from the Kafka record time)."""
        return self.model_copy(update={"ts": ts})

    def to_json(self) -> bytes:
        """Canonical JSON of the contract (``ts`` in epoch milliseconds, no null fields)."""
        data = self.model_dump(exclude_none=True)
        if self.ts is not None:
            data["ts"] = round(self.ts * 1000)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _missing(field: str, kind: str) -> _FieldError:
    return _FieldError(field, f"{field} is required for {kind} events")


def _from_validation_error(exc: ValidationError) -> InvalidEventError:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        return InvalidEventError(str(ctx_error), ctx_error.field)
    message = err["msg"].removeprefix("Value error, ")
    return InvalidEventError(message, loc or None)


def validate_event(data: Any) -> Event:
    """An :class:`Event` from decoded JSON, or :class:`InvalidEventError` naming the field."""
    if not isinstance(data, dict):
        raise InvalidEventError(f"an event must be a JSON object, got {type(data).__name__}")
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(exc) from None


def parse_event(raw: bytes | str) -> Event:
    """An :class:`Event` from JSON bytes (UTF-8), or :class:`InvalidEventError`.

    pydantic-core parses and validates a well-formed event in one pass, at about half the cost
    of ``json.loads`` and validating the dict (the worker does this for every message);
    whatever it refuses takes :func:`parse_event_plainly`, which accepts a little more (a BOM,
    UTF-16, Python's own nesting limit) and names the field that is wrong. A test holds the
    two to the same events wherever the first accepts.
    """
    try:
        return _validate_json(raw)
    except Exception:  # noqa: BLE001, S110 - refused: the plain path decides, with a reason
        pass
    return parse_event_plainly(raw)


def parse_event_plainly(raw: bytes | str) -> Event:
    """:func:`parse_event` through ``json.loads`` and :func:`validate_event`."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidEventError("not UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidEventError(f"not JSON: {exc}") from None
    return validate_event(data)


_validate_json = Event.model_validate_json


@dataclass
class LoadReport:
    """What reading an event file found: the good events and every bad line with its reason."""

    events: list[Event] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n_bad(self) -> int:
        return len(self.errors)


def read_event_lines(lines: Iterable[bytes | str], *, require_ts: bool = False) -> LoadReport:
    """Validate JSON lines (1-based numbering, blank lines skipped) into a :class:`LoadReport`."""
    report = LoadReport()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = parse_event(line)
            if require_ts and event.ts is None:
                raise InvalidEventError("ts is required in a history file", "ts")
        except InvalidEventError as exc:
            report.errors.append((number, str(exc)))
            continue
        report.events.append(event)
    return report


def load_events(path: Path, *, require_ts: bool = True, user_time_order: bool = True) -> LoadReport:
    """Read an event history (JSON lines in the contract); bad lines are reported, not fatal.

    With ``user_time_order`` (the default, for histories that training and evaluation replay)
    each user's events are put in event-time order (:func:`in_user_time_order`); ``zmot
    replay`` keeps the file's order, which is the order it produces to Kafka.
    """
    try:
        with path.open("rb") as handle:
            report = read_event_lines(handle, require_ts=require_ts)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if user_time_order:
        report.events = in_user_time_order(report.events)
    return report


def in_user_time_order(events: Sequence[Event]) -> list[Event]:
    """``events`` with each user's events sorted by time (stable; no ``ts`` sorts first), each
    in the positions that user's events held, so other users' events do not move.

    What came "before" an event is a question of event time: an export whose rows of one user
    are out of time order (DIGINETICA's views within a session) would otherwise have training
    and evaluation replay a history that never happened. A history already in time order per
    user comes back unchanged.
    """
    slots: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        slots.setdefault(event.user_id, []).append(i)
    out = list(events)
    for positions in slots.values():
        mine = sorted((events[i] for i in positions), key=_time_key)
        for i, event in zip(positions, mine, strict=True):
            out[i] = event
    return out


def _time_key(event: Event) -> float:
    return -math.inf if event.ts is None else event.ts
