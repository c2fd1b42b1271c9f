"""Catalog items and offers, read from JSON-lines files with errors that name the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recommender.core.errors import CatalogError


def load_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; CatalogError names a broken line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise CatalogError(f"{path}:{number}: expected a JSON object")
            yield number, obj


def _text(obj: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise CatalogError(f"{where}: {key} is required")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise CatalogError(f"{where}: {key} must be text")
    return str(value)


def _number(obj: dict[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = obj.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogError(f"{where}: {key} must be a number")
    return float(value)


@dataclass(frozen=True)
class Item:
    """A catalog item; only ``item_id`` is required."""

    item_id: str
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Offer:
    """Something the engine can offer: a concrete item with a title and a value."""

    offer_id: str
    item_id: str
    title: str
    value: float = 1.0


@dataclass
class Catalog:
    """Items by id."""

    items: dict[str, Item] = field(default_factory=dict)

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def load(cls, path: Path) -> Catalog:
        items: dict[str, Item] = {}
        for number, obj in load_jsonl(path):
            where = f"{path}:{number}"
            item_id = _text(obj, "item_id", where, required=True)
            assert item_id is not None
            tags = obj.get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise CatalogError(f"{where}: tags must be a list of text")
            items[item_id] = Item(
                item_id=item_id,
                title=_text(obj, "title", where),
                category=_text(obj, "category", where),
                brand=_text(obj, "brand", where),
                price=_number(obj, "price", where, None),
                tags=tuple(tags),
            )
        return cls(items)


def load_offers(path: Path, catalog: Catalog | None = None) -> list[Offer]:
    """Offers from JSON lines; with a catalog, an offer on an unknown item is an error."""
    offers: list[Offer] = []
    seen: set[str] = set()
    for number, obj in load_jsonl(path):
        where = f"{path}:{number}"
        offer_id = _text(obj, "offer_id", where, required=True)
        item_id = _text(obj, "item_id", where, required=True)
        assert offer_id is not None and item_id is not None
        if offer_id in seen:
            raise CatalogError(f"{where}: duplicate offer_id {offer_id!r}")
        if catalog is not None and catalog.get(item_id) is None:
            raise CatalogError(f"{where}: item_id {item_id!r} is not in the catalog")
        seen.add(offer_id)
        value = _number(obj, "value", where, 1.0)
        offers.append(Offer(offer_id, item_id, _text(obj, "title", where) or item_id, value or 0.0))
    return offers


def offers_from_catalog(catalog: Catalog) -> list[Offer]:
    """One offer per catalog item, for shops without an offer file."""
    return [Offer(i.item_id, i.item_id, i.title or i.item_id) for i in catalog.items.values()]
