"""Importers of public e-commerce clickstreams into zmot's event contract.

They turn real data sets into the files ``zmot train`` and ``zmot replay`` read, so models can
be trained and measured on behaviour nobody here generated. Every output event goes through
:func:`recommender.core.events.validate_event` and is written with :meth:`Event.to_json`, so
``events.jsonl`` holds exactly what the API would accept.

Taobao "UserBehavior" (Alibaba Tianchi): ``user_id,item_id,category_id,behavior,timestamp``,
no header, unix seconds.

============  ===============  ===========================================================
source        zmot type        why
============  ===============  ===========================================================
``pv``        ``page_view``    a view of the item page
``cart``      ``add_to_cart``
``buy``       ``purchase``
``fav``       ``page_view``    default (``fav="skip"`` drops it, counted as unmapped): the
                               contract has no favourite; a fav is made on the item page, so
                               a view certainly happened, and it must not become a
                               conversion target (``add_to_cart`` would invent intent)
other         skipped          counted as ``unknown kind``
============  ===============  ===========================================================

Catalog: ``item_id`` with ``category`` = the raw ``category_id`` text. Taobao ids are
anonymised numbers, so a prefix would add no meaning; the raw id joins back to the source,
and having no ``.`` it never fakes a top-level category. No title, brand or price exists.
The data set is documented as 2017-11-25 to 2017-12-03 in China time (UTC+8) but holds
rows outside it (the 10,000-row sample has 4 from the day before): rows outside
``[2017-11-24T16:00Z, 2017-12-03T16:00Z)`` are skipped as ``impossible timestamp`` (the window
is a parameter).

REES46 "eCommerce behavior data from multi category store": ``event_time,event_type,
product_id,category_id,category_code,brand,price,user_id,user_session`` with a header (whose
column names are used, so column order may differ), times like ``2019-10-01 00:00:00 UTC``.

====================  ===============  ==============================================
source                zmot type        why
====================  ===============  ==============================================
``view``              ``page_view``
``cart``              ``add_to_cart``
``purchase``          ``purchase``
``remove_from_cart``  skipped          counted as ``unmapped kind``: the contract has
                                       no negative cart event, and as a view it would
                                       add interest the shopper just withdrew
other                 skipped          counted as ``unknown kind``
====================  ===============  ==============================================

Catalog: ``item_id`` = ``product_id``; ``category`` = ``category_code`` (dotted, e.g.
``electronics.smartphone``) when present, else the raw ``category_id``; ``brand``; ``price``
when a positive number; ``title`` = brand and the last part of the category code (``"lenovo
notebook"``), or brand and product id when there is no code, absent when neither exists.
``user_session`` has no place in the contract and is dropped. The contract's own 2000-2100
check applies; a window can be given.

DIGINETICA ``train-item-views`` (CIKM Cup 2016): ``session_id;user_id;item_id;timeframe;
eventdate``, ``;``-separated, with a header (``sessionId;userId;...`` in the full release, also
recognised). Every row is a product view, ``page_view``. ``user_id`` is the session id: the
data set is anonymous sessions (``userId`` is mostly ``NA``), and its own protocol predicts
within sessions, so a real ``userId`` is not used either; one user per session. ``ts`` is
``eventdate`` midnight UTC plus ``timeframe`` (ms into the session): the time of day is
unknown, but the order inside a session is kept, which is what the time split needs;
across sessions only the day is real, and a session that runs past midnight has its later
views a day further on (order still kept). Rows outside ``[2016-01-01, 2016-07-01)`` (the
cup's logs are from the first half of 2016) are ``impossible timestamp``. Catalog: ``item_id``
only; the release's ``product-categories.csv`` (``itemId;categoryId``) could be joined later.

Retailrocket ``events.csv`` (Kaggle "Retailrocket recommender system dataset"):
``timestamp,visitorid,event,itemid,transactionid`` with a header (whose column names are used),
``timestamp`` in unix milliseconds. ``view`` -> ``page_view``, ``addtocart`` -> ``add_to_cart``,
``transaction`` -> ``purchase`` (its ``transactionid`` has no place in the contract); other kinds
are ``unknown kind``. ``visitorid`` is the user. Catalog: ``item_id`` only (the release's
``item_properties`` files hold categories as snapshots over time, not joined). Rows outside
``[2015-05-01, 2015-10-01)`` (the log runs from 2015-05-03 to 2015-09-18) are ``impossible
timestamp``.

YooChoose (RecSys Challenge 2015): ``yoochoose-clicks.dat``, ``session_id,timestamp,item_id,
category``, and ``yoochoose-buys.dat``, ``session_id,timestamp,item_id,price,quantity``, no
header, ISO-8601 times (``2014-04-07T10:51:09.277Z``). A row of 4 columns is a click
(``page_view``), one of 5 a buy (``purchase``), so the two files import as one after ``cat``.
Anonymous sessions like DIGINETICA: the session is the user. A click's ``category`` is the
context it was made in: ``0`` unknown, ``S`` a special offer (neither is kept), 1-12 a category
(``category``), any other number a brand (``brand``); a buy's positive ``price`` is the item's
price. Rows outside ``[2014-04-01, 2014-10-01)`` are ``impossible timestamp``.

All: events are written in input order (the Taobao sample is grouped by user, REES46 by time);
the report says whether the file was time-ordered overall and per user (what profile replay
needs). The catalog holds exactly the items of written events; the first non-empty value of
each field wins, and a later, different category or brand is counted as a conflict. Broken or
unmapped rows are skipped and counted per reason, with the first few examples and their line
numbers. Input is read line by line (plain or gzip), so memory grows only with the number of
items and users (roughly 100-200 bytes each), never with the number of rows.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

from tqdm import tqdm

from recommender.core.errors import InvalidEventError, ZmotError
from recommender.core.events import MAX_TS, MIN_TS, validate_event

Format = Literal["taobao", "rees46", "diginetica", "retailrocket", "yoochoose"]
FavPolicy = Literal["page_view", "skip"]
FORMATS: tuple[Format, ...] = ("taobao", "rees46", "diginetica", "retailrocket", "yoochoose")

EVENTS_FILE = "events.jsonl"
CATALOG_FILE = "catalog.jsonl"
REPORT_FILE = "import-report.json"

# The Taobao data set's documented days, 2017-11-25 to 2017-12-03 in China time (UTC+8).
TAOBAO_SINCE = datetime(2017, 11, 24, 16, tzinfo=UTC).timestamp()
TAOBAO_UNTIL = datetime(2017, 12, 3, 16, tzinfo=UTC).timestamp()
# The CIKM Cup 2016 logs are from the first half of 2016 (the sample: 2016-01-03 to 2016-06-01).
DIGINETICA_SINCE = datetime(2016, 1, 1, tzinfo=UTC).timestamp()
DIGINETICA_UNTIL = datetime(2016, 7, 1, tzinfo=UTC).timestamp()
# Retailrocket's events run from 2015-05-03 to 2015-09-18; YooChoose's from April to September 2014.
RETAILROCKET_SINCE = datetime(2015, 5, 1, tzinfo=UTC).timestamp()
RETAILROCKET_UNTIL = datetime(2015, 10, 1, tzinfo=UTC).timestamp()
YOOCHOOSE_SINCE = datetime(2014, 4, 1, tzinfo=UTC).timestamp()
YOOCHOOSE_UNTIL = datetime(2014, 10, 1, tzinfo=UTC).timestamp()
DEFAULT_WINDOWS: dict[Format, tuple[float | None, float | None]] = {
    "taobao": (TAOBAO_SINCE, TAOBAO_UNTIL),
    "rees46": (None, None),
    "diginetica": (DIGINETICA_SINCE, DIGINETICA_UNTIL),
    "retailrocket": (RETAILROCKET_SINCE, RETAILROCKET_UNTIL),
    "yoochoose": (YOOCHOOSE_SINCE, YOOCHOOSE_UNTIL),
}

# Skip reasons (keys of ImportReport.skipped); contract failures are "invalid <field>".
BAD_COLUMNS = "bad column count"
NOT_UTF8 = "not UTF-8"
BLANK = "blank line"
UNKNOWN_KIND = "unknown kind"
UNMAPPED_KIND = "unmapped kind"
BAD_TS = "bad timestamp"
IMPOSSIBLE_TS = "impossible timestamp"
EMPTY_USER = "empty user_id"
EMPTY_ITEM = "empty item_id"
EMPTY_SESSION = "empty session_id"
# Reasons that mean "this is not the format named", checked on the first rows.
FORMAT_REASONS = frozenset({BAD_COLUMNS, NOT_UTF8, UNKNOWN_KIND, BAD_TS})

TAOBAO_KINDS: dict[str, str | None] = {"pv": "page_view", "cart": "add_to_cart", "buy": "purchase"}
REES46_KINDS: dict[str, str | None] = {
    "view": "page_view",
    "cart": "add_to_cart",
    "purchase": "purchase",
    "remove_from_cart": None,
}
DIGINETICA_KINDS: dict[str, str | None] = {"view": "page_view"}  # the file holds only views
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior", "timestamp")
REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
REES46_REQUIRED = ("event_time", "event_type", "product_id", "user_id")
DIGINETICA_COLUMNS = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
RETAILROCKET_KINDS: dict[str, str | None] = {
    "view": "page_view",
    "addtocart": "add_to_cart",
    "transaction": "purchase",
}
RETAILROCKET_COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
RETAILROCKET_REQUIRED = ("timestamp", "visitorid", "event", "itemid")
YOOCHOOSE_KINDS: dict[str, str | None] = {"click": "page_view", "buy": "purchase"}
YOOCHOOSE_CLICKS = ("session_id", "timestamp", "item_id", "category")
YOOCHOOSE_BUYS = ("session_id", "timestamp", "item_id", "price", "quantity")
YOOCHOOSE_CATEGORIES = 12
"""A click's ``category`` 1-12 is a category; another number is the brand it was clicked under."""


class DataImportError(ZmotError):
    """An input that cannot be imported: unreadable, not the format named, or no row fits."""


class _Skip(Exception):
    """A row that is not imported, with the reason it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# (category, brand, price): kept as a tuple per item, the one structure that grows with items.
ItemInfo = tuple[str | None, str | None, float | None]
NO_INFO: ItemInfo = (None, None, None)


class _Row(NamedTuple):
    user_id: str
    kind: str
    item_id: str
    ts_ms: int
    info: ItemInfo


@dataclass(frozen=True)
class SkipExample:
    """One skipped row: where, why, and the start of its text."""

    line: int
    reason: str
    detail: str
    text: str


@dataclass
class ImportReport:
    """What an import read, wrote and skipped; also written as ``import-report.json``."""

    format: str
    input: str
    out_dir: str
    options: dict[str, Any]
    header: bool = False
    rows: int = 0
    events: Counter[str] = field(default_factory=Counter)
    source_kinds: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[SkipExample] = field(default_factory=list)
    catalog_items: int = 0
    catalog_conflicts: int = 0
    prices_omitted: int = 0
    users: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    out_of_order_rows: int = 0
    user_out_of_order_rows: int = 0

    @property
    def n_events(self) -> int:
        return sum(self.events.values())

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def time_ordered(self) -> bool:
        """Every event at or after the one before it in the file."""
        return self.out_of_order_rows == 0

    @property
    def time_ordered_per_user(self) -> bool:
        """Every user's events in time order (what replaying profiles needs)."""
        return self.user_out_of_order_rows == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "input": self.input,
            "out_dir": self.out_dir,
            "options": self.options,
            "header": self.header,
            "rows_read": self.rows,
            "events_written": self.n_events,
            "events_by_type": dict(sorted(self.events.items())),
            "source_kinds": dict(sorted(self.source_kinds.items())),
            "skipped": self.n_skipped,
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "examples": [vars(example) for example in self.examples],
            "catalog_items": self.catalog_items,
            "catalog_conflicts": self.catalog_conflicts,
            "prices_omitted": self.prices_omitted,
            "users": self.users,
            "time_range": {
                "first": _iso(self.first_ts_ms),
                "last": _iso(self.last_ts_ms),
                "first_ms": self.first_ts_ms,
                "last_ms": self.last_ts_ms,
            },
            "time_ordered": self.time_ordered,
            "out_of_order_rows": self.out_of_order_rows,
            "time_ordered_per_user": self.time_ordered_per_user,
            "user_out_of_order_rows": self.user_out_of_order_rows,
        }


def _iso(ms: int | None) -> str | None:
    """ISO-8601 UTC text of epoch millis (the number itself when no calendar holds it)."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"


def _split(text: str, sep: str = ",") -> list[str]:
    """CSV fields of one line: plain split when unquoted (all data sets), else :mod:`csv`."""
    if '"' not in text:
        return text.split(sep)
    import csv

    return next(csv.reader([text], delimiter=sep), [])


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Skip(BAD_TS, f"not unix seconds: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise _Skip(BAD_TS, f"not unix seconds: {text[:40]!r}")
    return value


def _iso_ms(raw: str, text: str) -> int:
    """Epoch ms of an ISO-8601 time (``raw``; UTC when it names no zone); a ``bad timestamp``
    skip quoting ``text`` (the row's field) when it is none."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise _Skip(BAD_TS, f"not a time: {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def _positive_price(text: str) -> float | None:
    """A price field as a number when it is a finite positive one (else no price)."""
    try:
        price = float(text)
    except ValueError:
        return None
    return price if math.isfinite(price) and price > 0 else None


class _Parser:
    """One format: how a row's fields become a user, kind, item, time and item info."""

    kinds: dict[str, str | None]
    columns: tuple[str, ...]
    width: int
    seen_kinds: Counter[str]
    sep = ","

    def header(self, fields: list[str]) -> bool:
        """True when ``fields`` is a header line (and adopt its column order)."""
        return [f.strip().lower() for f in fields] == list(self.columns)

    def check_width(self, fields: list[str]) -> None:
        if len(fields) != self.width:
            raise _Skip(BAD_COLUMNS, f"{len(fields)} columns, expected {self.width}")

    def parse(self, fields: list[str]) -> _Row:
        raise NotImplementedError


class _NamedColumns(_Parser):
    """A format whose header names its columns (any order; ``required`` must be there):
    without a header, the published order (``columns``)."""

    required: tuple[str, ...]

    def __init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.columns)}
        self.seen_kinds = Counter()

    def header(self, fields: list[str]) -> bool:
        names = [f.strip().lower() for f in fields]
        if not set(names) & set(self.required):
            return False
        missing = [name for name in self.required if name not in names]
        if missing:
            raise DataImportError(f"not a {self.name} header: no column {', '.join(missing)}")
        self._index = {name: i for i, name in enumerate(names)}
        self.width = len(names)
        return True

    def _get(self, fields: list[str], name: str) -> str:
        index = self._index.get(name)
        return fields[index].strip() if index is not None else ""

    @property
    def name(self) -> str:
        return type(self).__name__.strip("_").lower()


class _Taobao(_Parser):
    kinds = TAOBAO_KINDS
    columns = TAOBAO_COLUMNS
    width = len(TAOBAO_COLUMNS)

    def __init__(self, fav: FavPolicy) -> None:
        self.kinds = {**TAOBAO_KINDS, "fav": "page_view" if fav == "page_view" else None}
        # Taobao items carry only a category: share one info tuple per category.
        self._infos: dict[str, ItemInfo] = {}
        self.seen_kinds = Counter()

    def parse(self, fields: list[str]) -> _Row:
        self.check_width(fields)
        user, item, category, kind, ts = map(str.strip, fields)
        if kind not in self.kinds:
            raise _Skip(UNKNOWN_KIND, f"behavior {kind[:40]!r}")
        self.seen_kinds[kind] += 1
        ms = round(_seconds(ts) * 1000)
        info = self._infos.get(category)
        if info is None:
            info = self._infos[category] = (category or None, None, None)
        return _Row(user, kind, item, ms, info)


class _Rees46(_NamedColumns):
    kinds = REES46_KINDS
    columns = REES46_COLUMNS
    required = REES46_REQUIRED
    width = len(REES46_COLUMNS)

    def __init__(self) -> None:
        super().__init__()
        self._last_time = ("", 0)
        self._names: dict[str, str] = {}

    def _time_ms(self, text: str) -> int:
        last_text, last_ms = self._last_time
        if text == last_text:  # rows come in bursts within one second
            return last_ms
        raw = text.strip()
        ms = _iso_ms(raw[:-4] if raw.endswith(" UTC") else raw, text)
        self._last_time = (text, ms)
        return ms

    def _intern(self, text: str) -> str | None:
        if not text:
            return None
        return self._names.setdefault(text, text)

    def parse(self, fields: list[str]) -> _Row:
        self.check_width(fields)
        get = self._get
        kind = get(fields, "event_type")
        if kind not in self.kinds:
            raise _Skip(UNKNOWN_KIND, f"event_type {kind[:40]!r}")
        self.seen_kinds[kind] += 1
        ms = self._time_ms(get(fields, "event_time"))
        category = self._intern(get(fields, "category_code") or get(fields, "category_id"))
        price = _positive_price(get(fields, "price"))
        info = (category, self._intern(get(fields, "brand")), price)
        return _Row(get(fields, "user_id"), kind, get(fields, "product_id"), ms, info)


class _Diginetica(_Parser):
    kinds = DIGINETICA_KINDS
    columns = DIGINETICA_COLUMNS
    width = len(DIGINETICA_COLUMNS)
    sep = ";"

    def __init__(self) -> None:
        self._days: dict[str, int] = {}  # eventdate text -> its midnight UTC in ms
        self.seen_kinds = Counter()

    def header(self, fields: list[str]) -> bool:
        # The sample spells the columns session_id, the full release sessionId.
        names = [f.strip().lower().replace("_", "") for f in fields]
        return names == [name.replace("_", "") for name in self.columns]

    def _day_ms(self, text: str) -> int:
        ms = self._days.get(text)
        if ms is not None:
            return ms
        try:
            if len(text) != 10:
                raise ValueError(text)
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise _Skip(BAD_TS, f"eventdate not YYYY-MM-DD: {text[:40]!r}") from None
        ms = self._days[text] = round(day.timestamp() * 1000)
        return ms

    def parse(self, fields: list[str]) -> _Row:
        self.check_width(fields)
        self.seen_kinds["view"] += 1
        session, _user, item, timeframe, eventdate = map(str.strip, fields)
        if not session:
            raise _Skip(EMPTY_SESSION)
        if not (timeframe.isascii() and timeframe.removeprefix("-").isdigit()):
            raise _Skip(BAD_TS, f"timeframe not whole ms: {timeframe[:40]!r}")
        if timeframe.startswith("-"):
            raise _Skip(BAD_TS, f"negative timeframe: {timeframe[:40]!r}")
        return _Row(session, "view", item, self._day_ms(eventdate) + int(timeframe), NO_INFO)


class _RetailRocket(_NamedColumns):
    kinds = RETAILROCKET_KINDS
    columns = RETAILROCKET_COLUMNS
    required = RETAILROCKET_REQUIRED
    width = len(RETAILROCKET_COLUMNS)

    def parse(self, fields: list[str]) -> _Row:
        self.check_width(fields)
        get = self._get
        kind = get(fields, "event")
        if kind not in self.kinds:
            raise _Skip(UNKNOWN_KIND, f"event {kind[:40]!r}")
        self.seen_kinds[kind] += 1
        ts = get(fields, "timestamp")
        if not (ts.isascii() and ts.isdigit()):
            raise _Skip(BAD_TS, f"timestamp not whole ms: {ts[:40]!r}")
        return _Row(get(fields, "visitorid"), kind, get(fields, "itemid"), int(ts), NO_INFO)


class _YooChoose(_Parser):
    """Clicks (4 columns) and buys (5 columns) alike, told apart by their width, so the two
    files can be imported as one (``cat yoochoose-clicks.dat yoochoose-buys.dat``)."""

    kinds = YOOCHOOSE_KINDS
    columns = YOOCHOOSE_CLICKS
    width = len(YOOCHOOSE_CLICKS)

    def __init__(self) -> None:
        self._infos: dict[tuple[str, str], ItemInfo] = {}
        self.seen_kinds = Counter()

    def header(self, fields: list[str]) -> bool:
        names = [f.strip().lower().replace("_", "") for f in fields]
        return any(
            names == [name.replace("_", "") for name in columns]
            for columns in (YOOCHOOSE_CLICKS, YOOCHOOSE_BUYS)
        )

    def _info(self, kind: str, value: str) -> ItemInfo:
        """A click's context (``category``: 0 unknown, S a special offer, 1-12 a category,
        another number a brand) or a buy's price (when positive), as item info."""
        info = self._infos.get((kind, value))
        if info is not None:
            return info
        if kind == "buy":
            info = (None, None, _positive_price(value))
        elif value.isascii() and value.isdigit() and int(value) > 0:
            is_category = int(value) <= YOOCHOOSE_CATEGORIES
            info = (value, None, None) if is_category else (None, value, None)
        else:
            info = NO_INFO
        if len(self._infos) < 100_000:  # categories, brands and prices repeat
            self._infos[(kind, value)] = info
        return info

    def parse(self, fields: list[str]) -> _Row:
        if len(fields) not in (len(YOOCHOOSE_CLICKS), len(YOOCHOOSE_BUYS)):
            raise _Skip(BAD_COLUMNS, f"{len(fields)} columns, expected 4 (clicks) or 5 (buys)")
        kind = "click" if len(fields) == len(YOOCHOOSE_CLICKS) else "buy"
        self.seen_kinds[kind] += 1
        session, ts, item, context = (f.strip() for f in fields[:4])
        if not session:
            raise _Skip(EMPTY_SESSION)
        return _Row(session, kind, item, _iso_ms(ts, ts), self._info(kind, context))


def _parser(fmt: Format, fav: FavPolicy) -> _Parser:
    """A fresh parser of ``fmt`` (parsers keep per-file caches)."""
    if fmt == "taobao":
        return _Taobao(fav)
    if fmt == "retailrocket":
        return _RetailRocket()
    if fmt == "yoochoose":
        return _YooChoose()
    return _Rees46() if fmt == "rees46" else _Diginetica()


def _title(item_id: str, category: str | None, brand: str | None, fmt: Format) -> str | None:
    if fmt != "rees46":
        return None
    # A numeric category is a category_id (no code): nothing readable in it.
    leaf = "" if not category or category.isdigit() else category.rsplit(".", 1)[-1]
    leaf = leaf.replace("_", " ")
    if leaf:
        return f"{brand} {leaf}" if brand else leaf
    return f"{brand} {item_id}" if brand else None


def _catalog_line(item_id: str, info: ItemInfo, fmt: Format) -> bytes:
    category, brand, price = info
    row: dict[str, Any] = {"item_id": item_id}
    title = _title(item_id, category, brand, fmt)
    for key, value in (("title", title), ("category", category), ("brand", brand)):
        if value:
            row[key] = value
    if price is not None:
        row["price"] = price
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclass
class _Source:
    """An open input: its lines as bytes and how far into the file (in bytes) reading got."""

    lines: Iterator[bytes]
    position: Callable[[], int]
    size: int


def _open(path: Path, stack: ExitStack) -> _Source:
    """Open plain or gzip input (told apart by its first bytes, not by its name)."""
    try:
        raw = stack.enter_context(path.open("rb"))
        size = os.fstat(raw.fileno()).st_size
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raise DataImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic == b"\x1f\x8b":
        unzipped = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        return _Source(iter(unzipped), raw.tell, size)
    return _Source(iter(raw), raw.tell, size)


def default_window(fmt: Format) -> tuple[float | None, float | None]:
    """The plausible time window of a format's public data set (epoch seconds, None = open)."""
    return DEFAULT_WINDOWS[fmt]


def import_file(
    path: Path,
    out_dir: Path,
    fmt: Format,
    *,
    fav: FavPolicy = "page_view",
    window: tuple[float | None, float | None] | None = None,
    examples_per_reason: int = 3,
    probe_rows: int = 10_000,
    progress: bool = False,
) -> ImportReport:
    """Convert ``path`` (``fmt``, plain or gzip) into ``events.jsonl`` and ``catalog.jsonl``.

    ``window`` is ``[since, until)`` in epoch seconds (``None`` = the format's default, an
    open end = only the contract's 2000-2100 check). Rows that do not import are counted per
    reason in the returned report, which is also written as ``import-report.json``. Raises
    :class:`DataImportError` when the input cannot be read, when its first ``probe_rows``
    rows all look like another format, or when no row imports; nothing is written then.
    """
    if fmt not in FORMATS:
        raise DataImportError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    since, until = default_window(fmt) if window is None else window
    if since is not None and until is not None and since >= until:
        raise DataImportError("the time window is empty (since must be before until)")
    lo_ms = round(max(MIN_TS, since if since is not None else MIN_TS) * 1000)
    hi_ms = round(min(MAX_TS, until if until is not None else MAX_TS) * 1000)
    parser = _parser(fmt, fav)
    report = ImportReport(
        format=fmt,
        input=str(path),
        out_dir=str(out_dir),
        options={
            **({"fav": fav} if fmt == "taobao" else {}),
            "since": _iso(lo_ms) if since is not None else None,
            "until": _iso(hi_ms) if until is not None else None,
        },
    )
    parts = {name: out_dir / f".{name}.part" for name in (EVENTS_FILE, CATALOG_FILE)}
    done = False
    try:
        with ExitStack() as stack:
            source = _open(path, stack)
            out_dir.mkdir(parents=True, exist_ok=True)
            events_out = stack.enter_context(parts[EVENTS_FILE].open("wb"))
            bar = stack.enter_context(
                tqdm(
                    total=source.size,
                    unit="B",
                    unit_scale=True,
                    desc=f"import {fmt}",
                    file=sys.stderr,
                    disable=not progress,
                    mininterval=0.5,
                )
            )
            catalog = _convert(
                source,
                parser,
                report,
                events_out,
                (lo_ms, hi_ms),
                examples_per_reason,
                probe_rows,
                bar,
            )
        if report.n_events == 0:
            raise DataImportError(_nothing_message(report))
        with parts[CATALOG_FILE].open("wb") as catalog_out:
            for item_id, info in catalog.items():
                catalog_out.write(_catalog_line(item_id, info, fmt))
        for name, part in parts.items():
            os.replace(part, out_dir / name)
        done = True
        (out_dir / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise DataImportError(f"cannot import {path} into {out_dir}: {exc}") from None
    finally:
        if not done:
            for part in parts.values():
                part.unlink(missing_ok=True)
    return report


def _nothing_message(report: ImportReport, probing: bool = False) -> str:
    """Why nothing imports: the reason counts, the first bad line, a hint at the format."""
    path, fmt = report.input, report.format
    if report.rows == 0:
        return f"{path}: no data rows"
    reasons = ", ".join(f"{reason} {n}" for reason, n in report.skipped.most_common())
    what = f"none of the first {report.rows} rows" if probing else f"no row of {report.rows}"
    first = report.examples[0] if report.examples else None
    where = f"; line {first.line}: {first.detail or first.reason}" if first else ""
    hint = f"; is it a {fmt} file?" if _looks_foreign(report) else ""
    return f"{path}: {what} imports as {fmt} ({reasons}){where}{hint}"


def _convert(
    source: _Source,
    parser: _Parser,
    report: ImportReport,
    events_out: IO[bytes],
    window_ms: tuple[int, int],
    examples_per_reason: int,
    probe_rows: int,
    bar: Any,
) -> dict[str, ItemInfo]:
    """The row loop: write events in input order, count skips, collect the catalog."""
    catalog: dict[str, ItemInfo] = {}
    lo_ms, hi_ms = window_ms
    last_seen: dict[str, int] = {}  # user -> latest event time so far
    kinds = parser.kinds
    events = report.events
    outside = f"is outside [{_iso(lo_ms)}, {_iso(hi_ms)})"
    previous_ms: int | None = None
    read_pos = 0
    line_no = 0
    probed = False

    def skip(reason: str, detail: str, text: bytes | str) -> None:
        report.skipped[reason] += 1
        if report.skipped[reason] <= examples_per_reason:
            shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
            report.examples.append(SkipExample(line_no, reason, detail, shown.rstrip()[:200]))

    try:
        for line_no, raw in enumerate(source.lines, start=1):
            if line_no % 8192 == 0:
                position = source.position()
                bar.update(position - read_pos)
                read_pos = position
            if not probed and report.rows >= probe_rows:
                probed = True
                if _looks_foreign(report):
                    raise DataImportError(_nothing_message(report, probing=True))
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                report.rows += 1
                skip(NOT_UTF8, "", raw)
                continue
            fields = _split(text, parser.sep)
            if line_no == 1 and parser.header(fields):
                report.header = True
                continue
            report.rows += 1
            if not text.strip():
                skip(BLANK, "", text)
                continue
            try:
                row = parser.parse(fields)
                if not lo_ms <= row.ts_ms < hi_ms:
                    raise _Skip(IMPOSSIBLE_TS, f"{_iso(row.ts_ms)} {outside}")
                if not row.user_id:
                    raise _Skip(EMPTY_USER)
                if not row.item_id:
                    raise _Skip(EMPTY_ITEM)
                kind = kinds[row.kind]
                if kind is None:
                    raise _Skip(UNMAPPED_KIND, f"{row.kind} is not imported")
                event = validate_event(
                    {"user_id": row.user_id, "type": kind, "item_id": row.item_id, "ts": row.ts_ms}
                )
            except _Skip as exc:
                skip(exc.reason, exc.detail, text)
                continue
            except InvalidEventError as exc:
                skip(f"invalid {exc.field or 'event'}", exc.reason, text)
                continue
            events_out.write(event.to_json() + b"\n")
            events[kind] += 1
            ms = row.ts_ms
            if previous_ms is not None and ms < previous_ms:
                report.out_of_order_rows += 1
            previous_ms = ms
            user_last = last_seen.get(row.user_id)
            if user_last is None or ms > user_last:
                last_seen[row.user_id] = ms
            elif ms < user_last:
                report.user_out_of_order_rows += 1
            if report.first_ts_ms is None or ms < report.first_ts_ms:
                report.first_ts_ms = ms
            if report.last_ts_ms is None or ms > report.last_ts_ms:
                report.last_ts_ms = ms
            old = catalog.get(row.item_id)
            if old is None:
                catalog[row.item_id] = row.info
            elif old != row.info:
                catalog[row.item_id] = _merge(old, row.info, report)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataImportError(
            f"{report.input}: broken gzip after line {line_no}: {exc or 'truncated'}"
        ) from None
    bar.update(source.size - read_pos)
    report.catalog_items = len(catalog)
    report.users = len(last_seen)
    report.source_kinds = parser.seen_kinds
    if isinstance(parser, _Rees46):
        report.prices_omitted = sum(1 for info in catalog.values() if info[2] is None)
    return catalog


def _looks_foreign(report: ImportReport) -> bool:
    """No event yet and every skip says "another format": stop before reading gigabytes."""
    return (
        not report.events
        and bool(report.skipped)
        and all(reason in FORMAT_REASONS for reason in report.skipped)
    )


def _merge(old: ItemInfo, new: ItemInfo, report: ImportReport) -> ItemInfo:
    """First non-empty value per field wins; a differing category or brand is a conflict."""
    category, brand, price = old
    if (category is not None and new[0] is not None and category != new[0]) or (
        brand is not None and new[1] is not None and brand != new[1]
    ):
        report.catalog_conflicts += 1
    if (
        (category is not None or new[0] is None)
        and (brand is not None or new[1] is None)
        and (price is not None or new[2] is None)
    ):
        return old
    return (
        old[0] if old[0] is not None else new[0],
        old[1] if old[1] is not None else new[1],
        old[2] if old[2] is not None else new[2],
    )
