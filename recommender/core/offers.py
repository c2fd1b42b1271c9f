"""Offer catalog v2: what may be offered, to whom, where and when, read from JSON lines or YAML.

One offer per JSON line (``.jsonl``) or a YAML list (``.yaml``/``.yml``, either a top-level
list or ``{"offers": [...]}``). Every field but ``offer_id`` and a target is optional, so the
simple ``{"offer_id", "item_id", "title", "value"}`` lines of v1 are valid v2:

=====================  =================================================================
``offer_id``           unique text
``item_id``            target: a concrete item, or
``category``           target: a category; resolves to the user's best item of it
``title``              text shown (default: the item's title or id)
``value``              expected margin of a conversion, >= 0 (default 1)
``starts_at/ends_at``  ISO-8601 or epoch seconds; outside ``[starts_at, ends_at)`` never shown
``stages``             journey stages it suits (``stimulus zmot fmot smot umot``; empty: all)
``channels``           channels it may appear in (``web app email store ad``; empty: all)
``placements``         placements it may appear in (empty: all)
``group``              name that placements weigh (``context_weights``), default ``default``
``eligibility``        list of conditions on the profile, all must hold (below)
``max_impressions``    shown at most this often per user within the cap window, all channels
``lever``              business multiplier of the priority, > 0 (default 1)
=====================  =================================================================

Eligibility conditions read the profile's L1-normalised feature weights (names as in
:mod:`recommender.core.features`; a trailing ``*`` matches a prefix, e.g. ``bought:cat:*``):
``{"requires_feature": F}`` (weight > 0), ``{"excludes_feature": F}`` (no weight) and
``{"min_weight": {"feature": F, "value": x}}`` (weight >= x; a prefix sums its matches).
Errors name the file, line and field (:class:`~recommender.core.errors.CatalogError`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from recommender.core.catalog import Catalog
from recommender.core.errors import CatalogError

STAGES = ("stimulus", "zmot", "fmot", "smot", "umot")
CHANNELS = ("web", "app", "email", "store", "ad")
CONDITIONS = ("requires_feature", "excludes_feature", "min_weight")
FIELDS = frozenset(
    {
        "offer_id",
        "item_id",
        "category",
        "title",
        "value",
        "starts_at",
        "ends_at",
        "stages",
        "channels",
        "placements",
        "group",
        "eligibility",
        "max_impressions",
        "lever",
    }
)


@dataclass(frozen=True)
class Condition:
    """One eligibility rule on the profile's normalised weights."""

    kind: str
    feature: str
    value: float = 0.0

    def weight(self, weights: Mapping[str, float]) -> float:
        if self.feature.endswith("*"):
            stem = self.feature[:-1]
            return sum(w for name, w in weights.items() if name.startswith(stem))
        return weights.get(self.feature, 0.0)

    def holds(self, weights: Mapping[str, float]) -> bool:
        w = self.weight(weights)
        if self.kind == "requires_feature":
            return w > 0.0
        if self.kind == "excludes_feature":
            return w <= 0.0
        return w >= self.value


@dataclass(frozen=True)
class OfferSpec:
    """An offer of catalog v2; exactly one of ``item_id`` and ``category`` is set."""

    offer_id: str
    title: str
    item_id: str | None = None
    category: str | None = None
    value: float = 1.0
    starts_at: float | None = None
    ends_at: float | None = None
    stages: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    placements: frozenset[str] = frozenset()
    group: str = "default"
    eligibility: tuple[Condition, ...] = ()
    max_impressions: int | None = None
    lever: float = 1.0

    def valid_at(self, now: float) -> bool:
        """Inside its validity window."""
        if self.starts_at is not None and now < self.starts_at:
            return False
        return self.ends_at is None or now < self.ends_at

    def eligible(self, weights: Mapping[str, float]) -> bool:
        """Every eligibility condition holds for these normalised profile weights."""
        return all(c.holds(weights) for c in self.eligibility)


@dataclass(frozen=True)
class OfferCatalog:
    """The active offers with the version (content hash) of the file they came from."""

    offers: tuple[OfferSpec, ...]
    version: str
    source: str = ""
    by_id: dict[str, OfferSpec] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_id.update({o.offer_id: o for o in self.offers})

    def __len__(self) -> int:
        return len(self.offers)


def version_of(data: bytes) -> str:
    """Catalog version: the first 12 hex digits of the file's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:12]


def _fail(where: str, name: str, reason: str) -> CatalogError:
    return CatalogError(f"{where}: {name}: {reason}")


def _text(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(where, name, "must be text")
    return str(value)


def _number(obj: Mapping[str, Any], name: str, where: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, name, "must be a number")
    return float(value)


def _time(obj: Mapping[str, Any], name: str, where: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML parses unquoted timestamps itself
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _fail(where, name, f"not an ISO-8601 time: {value!r}") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise _fail(where, name, "must be an ISO-8601 time or epoch seconds")


def _names(
    obj: Mapping[str, Any], name: str, where: str, allowed: Sequence[str] | None = None
) -> frozenset[str]:
    value = obj.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, name, "must be a list of text")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise _fail(where, name, f"unknown {unknown}; expected some of {list(allowed)}")
    return frozenset(value)


def _conditions(obj: Mapping[str, Any], where: str) -> tuple[Condition, ...]:
    raw = obj.get("eligibility")
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raw = [{k: v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise _fail(where, "eligibility", "must be a list of conditions")
    out: list[Condition] = []
    for n, cond in enumerate(raw):
        here = f"eligibility[{n}]"
        if not isinstance(cond, dict) or len(cond) != 1:
            raise _fail(where, here, f"must be one of {list(CONDITIONS)} with its argument")
        [(kind, arg)] = cond.items()
        if kind not in CONDITIONS:
            raise _fail(where, here, f"unknown condition {kind!r}; expected {list(CONDITIONS)}")
        if kind == "min_weight":
            if not isinstance(arg, dict) or not isinstance(arg.get("feature"), str):
                raise _fail(where, here, "min_weight needs {feature: F, value: x}")
            value = arg.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _fail(where, f"{here}.value", "must be a number")
            out.append(Condition(kind, arg["feature"], float(value)))
        else:
            if not isinstance(arg, str) or not arg:
                raise _fail(where, here, f"{kind} needs a feature name")
            out.append(Condition(kind, arg))
    return tuple(out)


def parse_offer(obj: Any, where: str, catalog: Catalog | None = None) -> OfferSpec:
    """One offer from its decoded object; CatalogError names ``where`` and the field."""
    if not isinstance(obj, dict):
        raise CatalogError(f"{where}: expected an object with offer_id")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise _fail(where, unknown[0], f"unknown field; expected some of {sorted(FIELDS)}")
    offer_id = _text(obj, "offer_id", where)
    if offer_id is None:
        raise _fail(where, "offer_id", "is required")
    item_id, category = _text(obj, "item_id", where), _text(obj, "category", where)
    if (item_id is None) == (category is None):
        raise _fail(where, "item_id", "give exactly one target: item_id or category")
    if catalog is not None and len(catalog):
        if item_id is not None and catalog.get(item_id) is None:
            raise _fail(where, "item_id", f"{item_id!r} is not in the catalog")
        if category is not None and not any(i.category == category for i in catalog.items.values()):
            raise _fail(where, "category", f"no catalog item has category {category!r}")
    value = _number(obj, "value", where)
    if value is not None and value < 0:
        raise _fail(where, "value", "must be >= 0")
    lever = _number(obj, "lever", where)
    if lever is not None and lever <= 0:
        raise _fail(where, "lever", "must be > 0")
    cap = obj.get("max_impressions")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise _fail(where, "max_impressions", "must be a whole number >= 1")
    starts, ends = _time(obj, "starts_at", where), _time(obj, "ends_at", where)
    if starts is not None and ends is not None and ends <= starts:
        raise _fail(where, "ends_at", "must be after starts_at")
    title = _text(obj, "title", where)
    if title is None:
        item = catalog.get(item_id) if catalog is not None and item_id else None
        title = (item.title if item else None) or item_id or category or offer_id
    return OfferSpec(
        offer_id=offer_id,
        title=title,
        item_id=item_id,
        category=category,
        value=1.0 if value is None else value,
        starts_at=starts,
        ends_at=ends,
        stages=_names(obj, "stages", where, STAGES),
        channels=_names(obj, "channels", where, CHANNELS),
        placements=_names(obj, "placements", where),
        group=_text(obj, "group", where) or "default",
        eligibility=_conditions(obj, where),
        max_impressions=cap,
        lever=1.0 if lever is None else lever,
    )


def _jsonl_objects(path: Path, text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{path}:{number}: not JSON: {exc.msg}") from None
    return out


def _yaml_objects(path: Path, text: str) -> list[tuple[str, Any]]:
    """Offers of a YAML file with the line each starts on (from the composed node tree)."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not YAML: {exc}") from None
    if data is None:
        return []
    if isinstance(data, dict) and "offers" in data and isinstance(root, yaml.MappingNode):
        data = data["offers"]
        root = next(v for k, v in root.value if getattr(k, "value", None) == "offers")
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise CatalogError(f"{path}: expected a list of offers (or offers: [...])")
    return [
        (f"{path}:{node.start_mark.line + 1}", obj)
        for node, obj in zip(root.value, data, strict=True)
    ]


def load_offer_catalog(path: Path, catalog: Catalog | None = None) -> OfferCatalog:
    """Read and validate an offer file (.jsonl, .json lines, .yaml or .yml)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8") from None
    is_yaml = path.suffix.lower() in {".yaml", ".yml"}
    objects = _yaml_objects(path, text) if is_yaml else _jsonl_objects(path, text)
    offers: list[OfferSpec] = []
    seen: set[str] = set()
    for where, obj in objects:
        offer = parse_offer(obj, where, catalog)
        if offer.offer_id in seen:
            raise _fail(where, "offer_id", f"duplicate {offer.offer_id!r}")
        seen.add(offer.offer_id)
        offers.append(offer)
    return OfferCatalog(tuple(offers), version_of(data), str(path))


def catalog_offers(catalog: Catalog) -> OfferCatalog:
    """One plain offer per catalog item, for shops without an offer file."""
    offers = tuple(
        OfferSpec(offer_id=i.item_id, title=i.title or i.item_id, item_id=i.item_id)
        for i in catalog.items.values()
    )
    digest = version_of("\n".join(o.offer_id for o in offers).encode())
    return OfferCatalog(offers, digest, "catalog")
