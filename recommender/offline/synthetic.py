"""A synthetic demo shop: catalog, offers, event histories and their ground truth.

``zmot demo-data`` calls :func:`generate`. The shop and its shoppers are data, YAML tables in
``synthetic_shop/`` read by :func:`shop_tables`: categories with brands and title templates
(``catalog.yaml``), query phrasings per intent and language (``queries.yaml``), and intents
as sequences of journey phases (``journeys.yaml``). Users act out one or two intents ("my TV
broke", "going hiking") as searches, views, carts, purchases and reviews with realistic time
gaps. The engine never sees the intents: they go to ``intents.jsonl`` for tests and
evaluation only, so whatever the engine learns about TVs it learns from behaviour.

Everything is drawn from seeded :class:`random.Random` streams: the catalog from the seed
alone, each user from (seed, user number). The files are therefore byte-identical for the same
(users, seed, start), and user *i*'s history does not depend on how many users are generated.
All events are held in memory to sort them by time (about 15 events per user: fine for the
hundreds of thousands of users a demo needs).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from recommender.core.errors import ConfigError

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
SESSION_GAP = 30 * MINUTE  # a pause this long starts a new session
WINDOW = 28 * DAY  # every history fits between start and start + WINDOW

TWO_INTENTS = 0.3  # share of users with two intents (in separate sessions)
APP_SHARE = 0.4  # share of users who mostly use the app
CHANNEL_SWITCH = 0.15  # chance that a new session uses the other channel
NOISE = 0.15  # chance that a session opens with 1-2 views of popular items
REVISIT = 0.2  # chance that a view returns to an item seen in the same phase
SAME_SESSION_PURCHASE = 0.75  # else the purchase happens in a later session
HINT_SHARE = 0.7  # share of views after a search that follow its hint
MIN_EVENTS, MAX_EVENTS = 5, 40
ZIPF = 1.1  # popularity exponent of items within a category and of phrasings within a pool
OFFER_SHARE = 0.9
RATINGS_SPREAD = 0.9  # rating = item quality + normal noise with this deviation

FILES = ("catalog.jsonl", "offers.jsonl", "events.jsonl", "intents.jsonl")
"""What :func:`generate` writes, in this order."""

# --------------------------------------------------------------------------------------
# The shop's tables: what they hold, read from synthetic_shop/*.yaml
# --------------------------------------------------------------------------------------

SHOP_DIR = Path(__file__).with_name("synthetic_shop")
"""The demo shop's YAML tables (package data, shipped with the wheel)."""

Option = tuple[str, float, str]
"""A title slot value: text shown in the title, price factor, tag ("" for none)."""


@dataclass(frozen=True)
class Kind:
    """One kind of product in a category: how many items, title template, price and tags."""

    count: int
    template: str
    price: tuple[float, float]
    tags: tuple[str, ...]
    slots: dict[str, tuple[Option, ...]] = field(default_factory=dict)
    brands: tuple[str, ...] = ()  # empty: the category's brands


@dataclass(frozen=True)
class Category:
    """A dotted category path with its brands, margin range and kinds of products."""

    name: str
    brands: tuple[str, ...]
    margin: tuple[float, float]  # expected margin as a share of the price
    kinds: tuple[Kind, ...]
    background: bool = True  # main products; accessories and services are never noise


@dataclass(frozen=True)
class Target:
    """Where views go: a category, optionally only its items with a tag; ``*`` is any main item."""

    category: str
    tag: str = ""
    weight: float = 1.0


@dataclass(frozen=True)
class Phase:
    """One step of a journey: searches, then views of targets, maybe cart, purchase, review."""

    queries: str = ""  # query pool in queries.yaml
    searches: tuple[int, int] = (0, 0)
    targets: tuple[Target, ...] = ()
    views: tuple[int, int] = (0, 0)
    cart: float = 0.0  # chance to put a viewed item into the cart
    buy: float = 0.0  # chance that the carted item is bought
    review: float = 0.0  # chance of a review some days after the purchase
    chance: float = 1.0  # chance that the phase happens at all
    gap: tuple[float, float] = (20.0, 300.0)  # seconds after the previous phase (log-uniform)
    after_purchase: bool = False  # only if this journey already bought something
    split: float = 0.0  # chance that the views spread over two sessions


@dataclass(frozen=True)
class Intent:
    """Why a user comes: journey variants (weight, phases) and the share of users with it."""

    name: str
    share: float
    variants: tuple[tuple[float, tuple[Phase, ...]], ...]

    @property
    def categories(self) -> frozenset[str]:
        """Categories this intent's journeys view (kept out of the user's background noise)."""
        return frozenset(
            t.category
            for _, phases in self.variants
            for p in phases
            for t in p.targets
            if t.category != "*"
        )


@dataclass(frozen=True)
class ShopTables:
    """The demo shop as data, with the cumulative weights the generator draws by."""

    categories: tuple[Category, ...]  # accessories and services are not background
    discounts: tuple[tuple[int, float], ...]  # (percent off, weight among offers)
    languages: tuple[tuple[str, float], ...]  # each user's language and its share
    placeholders: dict[str, tuple[str, ...]]  # values for {name} in phrasings
    queries: dict[str, dict[str, tuple[str, ...]]]  # phrasings by pool and language
    hints: tuple[tuple[tuple[str, ...], Target], ...]  # words in a search -> next views
    intents: tuple[Intent, ...]  # shares add up to 1
    exclusive: frozenset[frozenset[str]]  # intent pairs no user has together
    pauses: dict[tuple[str, str], tuple[float, float]]  # in-session seconds by (prev, next)

    @cached_property
    def query_weights(self) -> dict[tuple[str, str], tuple[tuple[str, ...], list[float]]]:
        """Phrasings and their cumulative Zipf-like weights by (pool, language)."""
        return {
            (pool, lang): (phrases, _zipf(len(phrases), 0.9))
            for pool, langs in self.queries.items()
            for lang, phrases in langs.items()
        }

    @cached_property
    def placeholder_cum(self) -> dict[str, list[float]]:
        return {name: _zipf(len(values), 0.8) for name, values in self.placeholders.items()}

    @cached_property
    def intent_cum(self) -> list[float]:
        return _cumulative(i.share for i in self.intents)

    @cached_property
    def language_cum(self) -> list[float]:
        return _cumulative(w for _, w in self.languages)

    @cached_property
    def discount_cum(self) -> list[float]:
        return _cumulative(w for _, w in self.discounts)


@lru_cache(maxsize=1)
def shop_tables() -> ShopTables:
    """The demo shop's tables, read once per process from the YAML files in :data:`SHOP_DIR`."""
    catalog = _read_table("catalog.yaml")
    queries = _read_table("queries.yaml")
    journeys = _read_table("journeys.yaml")
    return ShopTables(
        categories=tuple(_category(spec) for spec in catalog["categories"]),
        discounts=tuple((int(p), float(w)) for p, w in catalog["discounts"].items()),
        languages=tuple((str(lang), float(w)) for lang, w in queries["languages"].items()),
        placeholders={
            name: tuple(str(v) for v in values) for name, values in queries["placeholders"].items()
        },
        queries={
            pool: {lang: tuple(phrases) for lang, phrases in langs.items()}
            for pool, langs in queries["phrasings"].items()
        },
        hints=tuple((tuple(words), _target(t)) for t, words in queries["hints"].items()),
        intents=tuple(_intent(name, spec) for name, spec in journeys["intents"].items()),
        exclusive=frozenset(frozenset(pair) for pair in journeys["exclusive"]),
        pauses={
            (previous, following): _span(span)
            for previous, nexts in journeys["pauses"].items()
            for following, span in nexts.items()
        },
    )


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it


def _read_table(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(
        (SHOP_DIR / name).read_text(encoding="utf-8"), Loader=_YAML_LOADER
    )
    return data


def _span(pair: Sequence[Any]) -> tuple[float, float]:
    """A [low, high] pair; durations may carry a unit: 20s, 5m, 2h, 3d."""
    low, high = (_seconds(v) for v in pair)
    return low, high


def _counts(pair: Sequence[Any]) -> tuple[int, int]:
    low, high = pair
    return int(low), int(high)


_UNITS = {"s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY}


def _seconds(value: float | str) -> float:
    if isinstance(value, str):
        return float(value[:-1]) * _UNITS[value[-1]]
    return float(value)


def _opts(specs: Iterable[str]) -> tuple[Option, ...]:
    """Options from ``"text|price factor|tag"`` specs (factor and tag may be left out)."""
    out: list[Option] = []
    for spec in specs:
        parts = spec.split("|")
        factor = float(parts[1]) if len(parts) > 1 and parts[1] else 1.0
        out.append((parts[0], factor, parts[2] if len(parts) > 2 else ""))
    return tuple(out)


def _category(spec: dict[str, Any]) -> Category:
    kinds = tuple(
        Kind(
            count=int(k["count"]),
            template=k["template"],
            price=_span(k["price"]),
            tags=tuple(k["tags"]),
            slots={name: _opts(options) for name, options in k.get("slots", {}).items()},
            brands=tuple(k.get("brands", ())),
        )
        for k in spec["kinds"]
    )
    return Category(
        spec["name"],
        tuple(spec["brands"]),
        _span(spec["margin"]),
        kinds,
        background=bool(spec.get("background", True)),
    )


def _target(text: str, weight: float = 1.0) -> Target:
    """A target from ``"category"`` or ``"category/tag"``."""
    category, _, tag = text.partition("/")
    return Target(category, tag, float(weight))


_PHASE_KEYS = frozenset(f.name for f in fields(Phase))


def _phase(spec: dict[str, Any]) -> Phase:
    """A journey phase; unknown keys are an error (a typo would silently change the shop)."""
    unknown = set(spec) - _PHASE_KEYS
    if unknown:
        raise ConfigError(f"{SHOP_DIR / 'journeys.yaml'}: unknown phase keys {sorted(unknown)}")
    targets = spec.get("targets", ())
    if not isinstance(targets, dict):  # a list: equal weights
        targets = dict.fromkeys(targets, 1.0)
    return Phase(
        queries=spec.get("queries", ""),
        searches=_counts(spec.get("searches", (0, 0))),
        targets=tuple(_target(t, w) for t, w in targets.items()),
        views=_counts(spec.get("views", (0, 0))),
        cart=float(spec.get("cart", 0.0)),
        buy=float(spec.get("buy", 0.0)),
        review=float(spec.get("review", 0.0)),
        chance=float(spec.get("chance", 1.0)),
        gap=_span(spec.get("gap", (20.0, 300.0))),
        after_purchase=bool(spec.get("after_purchase", False)),
        split=float(spec.get("split", 0.0)),
    )


def _intent(name: str, spec: dict[str, Any]) -> Intent:
    """An intent with ``phases`` (one journey) or weighted ``variants`` of phases."""
    if "phases" in spec:
        variants = [{"weight": 1.0, "phases": spec["phases"]}]
    else:
        variants = spec["variants"]
    return Intent(
        name,
        float(spec["share"]),
        tuple((float(v["weight"]), tuple(_phase(p) for p in v["phases"])) for v in variants),
    )


# --------------------------------------------------------------------------------------
# Building the catalog
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    item_id: str
    title: str
    category: str
    brand: str
    price: float
    tags: tuple[str, ...]
    quality: float  # mean rating of reviews


def _cumulative(weights: Iterable[float]) -> list[float]:
    """Running sums of weights (for bisect and :func:`random.Random.choices`)."""
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _zipf(n: int, exponent: float = ZIPF) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n."""
    return _cumulative(rank**-exponent for rank in range(1, n + 1))


def _pick(rng: random.Random, cum: Sequence[float]) -> int:
    """An index drawn by cumulative weights (faster than ``choices`` for one draw)."""
    return bisect.bisect_right(cum, rng.random() * cum[-1])


def _shop_price(value: float) -> float:
    """A price as shops write them: 549.99, 24.99, 8.99."""
    if value >= 100:
        return round(round(value / 10) * 10 - 0.01, 2)
    return round(max(round(value), 2) - 0.01, 2)


def _build_items(rng: random.Random, categories: Sequence[Category]) -> list[_Item]:
    """All catalog items, with distinct SKU ids that do not reveal the category."""
    total = sum(k.count for c in categories for k in c.kinds)
    ids = rng.sample(range(10000, 100000), total)
    items: list[_Item] = []
    for cat in categories:
        titles: set[str] = set()
        for kind in cat.kinds:
            brands = kind.brands or cat.brands
            for _ in range(kind.count):
                for attempt in range(40):
                    brand = rng.choice(brands)
                    values = {name: rng.choice(options) for name, options in kind.slots.items()}
                    title = kind.template.format(
                        brand=brand, **{n: v[0] for n, v in values.items()}
                    )
                    if title not in titles:
                        break
                    if attempt == 39:
                        code = f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(10, 99)}"
                        title = f"{title} ({code})"
                titles.add(title)
                price = rng.uniform(*kind.price)
                tags = list(kind.tags)
                for value in values.values():
                    price *= value[1]
                    if value[2] and value[2] not in tags:
                        tags.append(value[2])
                items.append(
                    _Item(
                        item_id=f"SKU-{ids[len(items)]}",
                        title=title,
                        category=cat.name,
                        brand=brand,
                        price=_shop_price(price),
                        tags=tuple(tags),
                        quality=rng.uniform(3.0, 4.8),
                    )
                )
    return items


class _Pool:
    """Items to draw from with Zipf-like popularity (cumulative weights for bisect)."""

    def __init__(self, items: Sequence[_Item], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cum = _cumulative(weights)

    def draw(self, rng: random.Random) -> _Item:
        return self.items[_pick(rng, self.cum)]


class _Shop:
    """The catalog with popularity: pools per target, a background pool of main items."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"zmot-synthetic:{seed}:catalog")
        self.tables = tables = shop_tables()
        self.items = _build_items(rng, tables.categories)
        self.by_id = {item.item_id: item for item in self.items}
        self.categories = {c.name: c for c in tables.categories}
        self.margin = {
            item.item_id: rng.uniform(*self.categories[item.category].margin) for item in self.items
        }
        self.popularity: dict[str, float] = {}
        by_category: dict[str, list[_Item]] = {}
        for item in self.items:
            by_category.setdefault(item.category, []).append(item)
        for members in by_category.values():
            ranked = list(members)
            rng.shuffle(ranked)
            for rank, item in enumerate(ranked, start=1):
                self.popularity[item.item_id] = rank**-ZIPF
        self.by_category = by_category
        self._pools: dict[tuple[str, str], _Pool] = {}
        background = [i for i in self.items if self.categories[i.category].background]
        # Each main category gets the same traffic; inside it, Zipf decides.
        share = {
            name: sum(self.popularity[i.item_id] for i in members)
            for name, members in by_category.items()
        }
        self.background = _Pool(
            background, [self.popularity[i.item_id] / share[i.category] for i in background]
        )

    def pool(self, target: Target) -> _Pool:
        """The pool of a target (cached)."""
        key = (target.category, target.tag)
        pool = self._pools.get(key)
        if pool is None:
            if target.category == "*":
                pool = self.background
            else:
                members = self.by_category[target.category]
                if target.tag:  # a tag no item of this catalog has: the whole category
                    members = [i for i in members if target.tag in i.tags] or members
                pool = _Pool(members, [self.popularity[i.item_id] for i in members])
            self._pools[key] = pool
        return pool


# --------------------------------------------------------------------------------------
# Acting out journeys
# --------------------------------------------------------------------------------------

_UMLAUTS = tuple(zip("äöüßÄÖÜ", ("ae", "oe", "ue", "ss", "Ae", "Oe", "Ue"), strict=True))


def _hint(
    query: str, categories: set[str], hints: Iterable[tuple[tuple[str, ...], Target]]
) -> Target | None:
    """The target a search asks for, if it is one the current phase looks at."""
    text = query.lower()
    for words, target in hints:
        if target.category in categories and any(w in text for w in words):
            return target
    return None


def _loguniform(rng: random.Random, lo: float, hi: float) -> float:
    """A pause between lo and hi seconds, short ones more likely (log-uniform)."""
    if hi <= lo:
        return lo
    lo = max(lo, 1.0)
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _typo(rng: random.Random, text: str) -> str:
    """One keyboard slip in a word of four letters or more: swap, drop or double a letter."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long_words:
        return text
    wi = rng.choice(long_words)
    w = words[wi]
    pos = rng.randrange(1, len(w) - 1)
    kind = rng.random()
    if kind < 0.4:
        w = w[:pos] + w[pos + 1] + w[pos] + w[pos + 2 :]
    elif kind < 0.7:
        w = w[:pos] + w[pos + 1 :]
    else:
        w = w[:pos] + w[pos] + w[pos:]
    words[wi] = w
    return " ".join(words)


def _noisy_query(rng: random.Random, text: str) -> str:
    """A phrasing as people type it: capitals, umlauts spelled out or dropped, typos."""
    r = rng.random()
    if r < 0.15:
        text = " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    elif r < 0.25:
        text = text[:1].upper() + text[1:]
    elif r < 0.27:
        text = text.upper()
    if any(u in text for u, _ in _UMLAUTS):
        r = rng.random()
        if r < 0.15:
            for umlaut, spelled in _UMLAUTS:
                text = text.replace(umlaut, spelled)
        elif r < 0.25:
            for umlaut, spelled in _UMLAUTS:
                text = text.replace(umlaut, spelled[0])
    if rng.random() < 0.07:
        text = _typo(rng, text)
    return text


class _User:
    """One user's history under construction: relative times in ms, events as small tuples."""

    def __init__(
        self, rng: random.Random, shop: _Shop, lang: str, channel: str, avoid: frozenset[str]
    ) -> None:
        self.rng = rng
        self.shop = shop
        self.lang = lang
        self.channel = channel
        self.home_channel = channel
        self.avoid = avoid  # categories of the user's intents: never background noise
        self.t = 0
        self.last = ""  # type of the last event
        # (ms, type, item id or query, rating)
        self.events: list[tuple[int, str, str, int]] = []
        self.channels: list[str] = []
        self.reviews: list[tuple[int, str]] = []

    # -- time ------------------------------------------------------------------------

    def pause(self, lo: float, hi: float) -> None:
        """Let lo..hi seconds pass; a long pause starts a new session (channel, noise)."""
        if not self.events:
            self.start_session()
            return
        seconds = _loguniform(self.rng, lo, hi)
        self.t += max(1000, int(seconds * 1000))
        if seconds >= SESSION_GAP:
            self.start_session()

    def step(self, kind: str) -> None:
        """The pause before an event of this kind within a session."""
        if self.events:
            lo, hi = self.shop.tables.pauses.get((self.last, kind), (10.0, 120.0))
            self.t += max(1000, int(_loguniform(self.rng, lo, hi) * 1000))

    def start_session(self) -> None:
        """A new visit: maybe the other channel, maybe a glance at popular items first."""
        rng = self.rng
        if rng.random() < CHANNEL_SWITCH:
            self.channel = "web" if self.home_channel == "app" else "app"
        else:
            self.channel = self.home_channel
        if rng.random() < NOISE:
            for _ in range(rng.randint(1, 2)):
                self.emit("page_view", self.background_item())

    # -- events ----------------------------------------------------------------------

    def emit(self, kind: str, value: str, rating: int = 0) -> None:
        """Append an event after the in-session pause that fits it."""
        self.step(kind)
        self.events.append((self.t, kind, value, rating))
        self.channels.append(self.channel)
        self.last = kind

    def background_item(self) -> str:
        """A popular item outside the user's own intents (their journeys stay clean)."""
        item = self.shop.background.draw(self.rng)
        for _ in range(50):
            if item.category not in self.avoid:
                break
            item = self.shop.background.draw(self.rng)
        return item.item_id

    def query(self, pool: str, used: set[str]) -> str:
        """A search text from a pool, mostly in the user's language, unlike earlier ones."""
        rng = self.rng
        tables = self.shop.tables
        lang = self.lang
        if rng.random() < 0.1:
            lang = rng.choice(list(tables.queries[pool]))
        weights = tables.query_weights
        phrases, cum = weights.get((pool, lang)) or weights[(pool, "en")]
        text = phrases[0]
        for _ in range(5):
            text = rng.choices(phrases, cum_weights=cum)[0]
            if text not in used:
                break
        used.add(text)
        for name, values in tables.placeholders.items():
            slot = "{" + name + "}"
            if slot in text:
                text = text.replace(
                    slot, rng.choices(values, cum_weights=tables.placeholder_cum[name])[0]
                )
        return _noisy_query(rng, text)

    # -- journeys --------------------------------------------------------------------

    def journey(self, intent: Intent) -> None:
        """Act out one intent: pick a variant, run its phases."""
        rng = self.rng
        variants = intent.variants
        phases = variants[0][1]
        if len(variants) > 1:
            phases = rng.choices([v[1] for v in variants], weights=[v[0] for v in variants])[0]
        bought = False
        for phase in phases:
            if phase.after_purchase and not bought:
                continue
            if rng.random() >= phase.chance:
                continue
            bought = self.phase(phase) or bought

    def phase(self, phase: Phase) -> bool:
        """Run one phase; True if it ended in a purchase."""
        rng = self.rng
        self.pause(*phase.gap)
        searches = rng.randint(*phase.searches) if phase.queries else 0
        views = rng.randint(*phase.views) if phase.targets else 0
        actions: list[str] = []
        cuts = sorted(rng.randint(0, views) for _ in range(max(searches, 1) - 1))
        bounds = [0, *cuts, views]
        for i in range(max(searches, 1)):
            if i < searches:
                actions.append("search")
            actions.extend(["page_view"] * (bounds[i + 1] - bounds[i]))
        if views >= 4 and rng.random() < phase.split:
            actions.insert(rng.randint(2, len(actions) - 1), "break")
        used: set[str] = set()
        seen: list[str] = []
        weights = [t.weight for t in phase.targets]
        categories = {t.category for t in phase.targets}
        hint: Target | None = None
        for action in actions:
            if action == "search" or (action == "break" and phase.queries and rng.random() < 0.5):
                if action == "break":
                    self.pause(HOUR, 2 * DAY)
                query = self.query(phase.queries, used)
                self.emit("search", query)
                hint = _hint(query, categories, self.shop.tables.hints)
            elif action == "break":
                self.pause(HOUR, 2 * DAY)
            else:
                if len(seen) >= 2 and rng.random() < REVISIT:
                    item_id = rng.choice(seen)
                elif phase.targets[0].category == "*":
                    item_id = self.background_item()
                else:
                    target = phase.targets[0]
                    if hint is not None and rng.random() < HINT_SHARE:
                        target = hint
                    elif len(phase.targets) > 1:
                        target = rng.choices(phase.targets, weights=weights)[0]
                    pool = self.shop.pool(target)
                    item = pool.draw(rng)
                    if item.item_id in seen:
                        item = pool.draw(rng)
                    item_id = item.item_id
                seen.append(item_id)
                self.emit("page_view", item_id)
        if not seen or rng.random() >= phase.cart:
            return False
        item_id = rng.choice(seen)  # the more views, the likelier it goes to the cart
        if self.events[-1][2] != item_id:
            self.emit("page_view", item_id)
        self.emit("add_to_cart", item_id)
        if rng.random() >= phase.buy:
            return False
        if rng.random() >= SAME_SESSION_PURCHASE:
            self.pause(HOUR, 2 * DAY)
            self.emit("page_view", item_id)
        self.emit("purchase", item_id)
        if rng.random() < phase.review:
            self.reviews.append((self.t + int(_loguniform(rng, 2 * DAY, 12 * DAY) * 1000), item_id))
        return True

    def finish(self) -> list[tuple[int, str, str, int, str]]:
        """Events with reviews merged in, at least MIN_EVENTS, times from 0, strictly rising."""
        rng = self.rng
        events = [(*e, c) for e, c in zip(self.events, self.channels, strict=True)]
        for ms, item_id in self.reviews:
            item = self.shop.by_id[item_id]
            rating = round(rng.gauss(item.quality, RATINGS_SPREAD))
            events.append(
                (ms, "review", item_id, min(5, max(1, rating)), rng.choice(("web", "app")))
            )
        events.sort(key=lambda e: e[0])
        if len(events) < MIN_EVENTS:
            # A short history gets an earlier browsing session in front of it.
            t = events[0][0] - int(_loguniform(rng, HOUR, 3 * DAY) * 1000) if events else 0
            lead: list[tuple[int, str, str, int, str]] = []
            for _ in range(MIN_EVENTS - len(events) + rng.randint(0, 2)):
                lead.append((t, "page_view", self.background_item(), 0, self.home_channel))
                t -= int(_loguniform(rng, 15, 300) * 1000)
            events = lead[::-1] + events
        t0 = events[0][0]
        out: list[tuple[int, str, str, int, str]] = []
        previous = -1
        for ms, kind, value, rating, channel in events:
            ms = max(ms - t0, previous + 1)
            out.append((ms, kind, value, rating, channel))
            previous = ms
        return out


def _pick_intents(rng: random.Random, tables: ShopTables) -> list[Intent]:
    """One intent (or two distinct, compatible ones) drawn by share."""
    intents = tables.intents
    first = intents[_pick(rng, tables.intent_cum)]
    if rng.random() >= TWO_INTENTS:
        return [first]
    others = [
        i
        for i in intents
        if i is not first and frozenset({i.name, first.name}) not in tables.exclusive
    ]
    second = rng.choices(others, weights=[i.share for i in others])[0]
    return [first, second]


def _user_history(
    shop: _Shop, seed: int, index: int
) -> tuple[list[str], list[tuple[int, str, str, int, str]], random.Random]:
    """Intents and events (times from 0) of user number ``index``."""
    rng = random.Random(f"zmot-synthetic:{seed}:user:{index}")
    intents = _pick_intents(rng, shop.tables)
    lang = shop.tables.languages[_pick(rng, shop.tables.language_cum)][0]
    channel = "app" if rng.random() < APP_SHARE else "web"
    avoid = frozenset[str]().union(*(i.categories for i in intents))
    window_ms = int(WINDOW * 1000)
    events: list[tuple[int, str, str, int, str]] = []
    for _ in range(20):
        user = _User(rng, shop, lang, channel, avoid)
        for k, intent in enumerate(intents):
            if k:
                user.pause(6 * HOUR, 5 * DAY)
            user.journey(intent)
        events = user.finish()
        if len(events) <= MAX_EVENTS and events[-1][0] <= window_ms:
            break
    else:  # pragma: no cover - practically unreachable; keep the contract anyway
        events = [e for e in events if e[0] <= window_ms][:MAX_EVENTS]
    return [i.name for i in intents], events, rng


# --------------------------------------------------------------------------------------
# Writing the files
# --------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_DAY_MS = 86_400_000


@lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return f"{_EPOCH + timedelta(days=days):%Y-%m-%d}"


def _iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. 2024-05-01T12:00:00.123Z (date cached)."""
    days, rest = divmod(ms, _DAY_MS)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_day(days)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def _start_ms(start: datetime | None) -> int:
    if start is None:
        start = datetime.now(UTC) - timedelta(days=28)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return (start - _EPOCH) // timedelta(milliseconds=1)


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write JSON lines atomically (temp file, then rename); returns the number of lines."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def _offers(shop: _Shop, seed: int) -> list[dict[str, Any]]:
    """One offer for most items: a discount, valued at the expected margin."""
    rng = random.Random(f"zmot-synthetic:{seed}:offers")
    items = sorted(shop.items, key=lambda i: i.item_id)
    ids = rng.sample(range(10000, 100000), len(items))
    offers: list[dict[str, Any]] = []
    for item, number in zip(items, ids, strict=True):
        if rng.random() >= OFFER_SHARE:
            continue
        discount = shop.tables.discounts[_pick(rng, shop.tables.discount_cum)][0]
        offers.append(
            {
                "offer_id": f"OFF-{number}",
                "item_id": item.item_id,
                "title": f"-{discount}% on {item.title}",
                "value": round(item.price * shop.margin[item.item_id], 2),
            }
        )
    return offers


def generate(
    out_dir: Path,
    *,
    users: int = 2000,
    seed: int = 7,
    start: datetime | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Write the demo shop's four JSON-lines files to ``out_dir``; lines written per file name.

    Histories lie between ``start`` (default: 28 days ago; naive means UTC) and ``start`` + 28
    days. The bytes written are a pure function of (users, seed, start); the catalog and offers
    depend on the seed alone. Files appear whole (written aside, then renamed).
    """
    if users < 0:
        raise ConfigError(f"users must be >= 0, got {users}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _start_ms(start)
    shop = _Shop(seed)
    width = max(5, len(str(users)))
    window_ms = int(WINDOW * 1000)

    intents_rows: list[dict[str, Any]] = []
    # (absolute ms, user number, kind, value, rating, channel, event id)
    events: list[tuple[int, int, str, str, int, str, str]] = []
    user_ids = [f"U{index + 1:0{width}d}" for index in range(users)]
    for index in tqdm(
        range(users), desc="users", unit="user", disable=not progress, file=sys.stderr
    ):
        names, history, rng = _user_history(shop, seed, index)
        intents_rows.append({"user_id": user_ids[index], "intents": names})
        offset = base + rng.randint(0, window_ms - history[-1][0])
        for ms, kind, value, rating, channel in history:
            event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            events.append((offset + ms, index, kind, value, rating, channel, event_id))
    events.sort(key=lambda e: (e[0], e[1]))

    def event_rows() -> Iterable[dict[str, Any]]:
        for ms, index, kind, value, rating, channel, event_id in events:
            row: dict[str, Any] = {
                "user_id": user_ids[index],
                "type": kind,
                "ts": _iso(ms),
            }
            if kind == "search":
                row["query"] = value
            else:
                row["item_id"] = value
            if kind == "review":
                row["rating"] = rating
            row["channel"] = channel
            row["event_id"] = event_id
            yield row

    catalog_rows = (
        {
            "item_id": i.item_id,
            "title": i.title,
            "category": i.category,
            "brand": i.brand,
            "price": i.price,
            "tags": list(i.tags),
        }
        for i in sorted(shop.items, key=lambda i: i.item_id)
    )
    return {
        "catalog.jsonl": _write(out / "catalog.jsonl", catalog_rows),
        "offers.jsonl": _write(out / "offers.jsonl", _offers(shop, seed)),
        "events.jsonl": _write(out / "events.jsonl", event_rows()),
        "intents.jsonl": _write(out / "intents.jsonl", intents_rows),
    }
