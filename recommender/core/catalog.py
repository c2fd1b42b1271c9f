"""Catalog items, read from a JSON-lines file with errors that name the line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recommender.core.errors import CatalogError

log = logging.getLogger("zmot.catalog")


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


def load_catalog(path: Path | None) -> Catalog:
    """The catalog named by ``ZMOT_CATALOG_PATH``, for the worker and the API alike.

    Empty (with a warning) when none is configured or the file does not exist: events then get
    no category or brand features and offers no titles, and the API still refuses to start when
    that leaves it without offers. A file that exists but cannot be read or parsed raises
    :class:`CatalogError`, rather than serving without the features the model was trained with.
    """
    if path is None:
        log.info("no catalog configured: events get no category or brand features")
        return Catalog()
    if not path.exists():
        log.warning("catalog %s does not exist: events get no category or brand features", path)
        return Catalog()
    catalog = Catalog.load(path)
    log.info("catalog %s: %d items", path, len(catalog))
    return catalog
