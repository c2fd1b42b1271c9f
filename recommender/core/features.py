"""What an event says about a user's interests: named features with weights.

Feature names are readable because reasons are built from them:

=================  ====================================================
``item:<id>``      the user looked at, carted, bought or reviewed the item
``cat:<c>``        ... an item of category ``c`` (and its top level)
``brand:<b>``      ... an item of brand ``b``
``bought:item:``   purchases, kept apart so the model can learn what follows a purchase
``bought:cat:``
``q:<token>``      a normalised search token (see :mod:`recommender.core.text`)
``qp:<prefix>``    its first letters, so unseen word forms still share a signal
``kind:<type>``    the kind of event
=================  ====================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from recommender.core.catalog import Item
from recommender.core.events import Event
from recommender.core.text import PREFIX_LEN, tokens

DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "page_view": 1.0,
    "search": 1.5,
    "add_to_cart": 3.0,
    "purchase": 4.0,
    "review": 1.0,
    "click": 1.0,
    "impression": 0.0,
    "dismiss": 0.0,
}


@dataclass(frozen=True)
class FeatureConfig:
    """Weights of the feature extraction; stored in every model so serving uses the same."""

    kind_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    category_share: float = 0.5
    top_category_share: float = 0.25
    brand_share: float = 0.25
    bought_share: float = 1.0
    prefix_share: float = 0.5
    kind_feature: float = 0.1

    def to_dict(self) -> dict[str, object]:
        return {
            "kind_weights": dict(self.kind_weights),
            "category_share": self.category_share,
            "top_category_share": self.top_category_share,
            "brand_share": self.brand_share,
            "bought_share": self.bought_share,
            "prefix_share": self.prefix_share,
            "kind_feature": self.kind_feature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FeatureConfig:
        return cls(**data)  # type: ignore[arg-type]  # keys written by to_dict


ItemLookup = Callable[[str], Item | None]


@lru_cache(maxsize=1 << 16)
def split_feature(name: str) -> tuple[str, str]:
    """(kind, rest) of a feature name (kinds as in the module table): ``"bought:item:tv-1"`` is
    ``("bought", "item:tv-1")``.

    Cached: reasons parse every positive term of every answer, and the names are the model's
    bounded vocabulary.
    """
    kind, _, rest = name.partition(":")
    return kind, rest


ITEM_PREFIX = "item:"
CATEGORY_PREFIX = "cat:"
QUERY_PREFIX = "q:"


def item_feature(item_id: str) -> str:
    """The name of the feature for an item the user interacted with."""
    return ITEM_PREFIX + item_id


def item_weights(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """(item id, weight) of every ``item:<id>`` feature of a profile, in profile order.

    ``bought:item:`` features are not item features. One comprehension per request, not a
    call per feature.
    """
    n = len(ITEM_PREFIX)
    return [(name[n:], w) for name, w in weights.items() if name.startswith(ITEM_PREFIX)]


def category_weights(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """(category, weight) of every ``cat:<category>`` feature of a profile, in profile order
    (``bought:cat:`` features are not category features)."""
    n = len(CATEGORY_PREFIX)
    return [(name[n:], w) for name, w in weights.items() if name.startswith(CATEGORY_PREFIX)]


def token_positions(names: Iterable[str]) -> dict[str, int]:
    """Each search token of ``q:<token>`` features by its last position in ``names``
    (a profile's features are in the order it first saw them)."""
    n = len(QUERY_PREFIX)
    return {name[n:]: i for i, name in enumerate(names) if name.startswith(QUERY_PREFIX)}


def catalog_search_features(items: Iterable[Item]) -> frozenset[str]:
    """The ``q:`` / ``qp:`` features a search can have whose word is the shop's own text
    (a token of an item's title, category, brand or tags): such a feature says nothing about
    who searched, so the shared feature vocabulary may hold it (any other search word stays
    in its searcher's profile only: SECURITY.md)."""
    words: set[str] = set()
    for item in items:
        for text in (item.title, item.category, item.brand, *item.tags):
            if text:
                words.update(tokens(text.replace(".", " ").replace("_", " ")))
    names = {f"{QUERY_PREFIX}{word}" for word in words}
    names.update(f"qp:{word[:PREFIX_LEN]}" for word in words if len(word) > PREFIX_LEN)
    return frozenset(names)


def _add(out: dict[str, float], name: str, weight: float) -> None:
    if weight > 0.0:
        out[name] = out.get(name, 0.0) + weight


def event_features(event: Event, lookup: ItemLookup, config: FeatureConfig) -> dict[str, float]:
    """Features of one event with their (undecayed) weights; empty for pure exposure events."""
    base = config.kind_weights.get(event.type, 0.0)
    out: dict[str, float] = {}
    if base <= 0.0:
        return out
    _add(out, f"kind:{event.type}", config.kind_feature)
    if event.item_id is not None:
        _add(out, item_feature(event.item_id), base)
        item = lookup(event.item_id)
        category = item.category if item else None
        if category:
            _add(out, f"{CATEGORY_PREFIX}{category}", base * config.category_share)
            top = category.split(".", 1)[0]
            if top != category:
                _add(out, f"{CATEGORY_PREFIX}{top}", base * config.top_category_share)
        if item and item.brand:
            _add(out, f"brand:{item.brand}", base * config.brand_share)
        if event.type == "purchase":
            _add(out, f"bought:item:{event.item_id}", base * config.bought_share)
            if category:
                _add(out, f"bought:cat:{category}", base * config.bought_share)
    if event.query is not None:
        words = tokens(event.query)
        if words:
            share = base / len(words) ** 0.5
            for word in words:
                _add(out, f"q:{word}", share)
                if len(word) > PREFIX_LEN:
                    _add(out, f"qp:{word[:PREFIX_LEN]}", share * config.prefix_share)
    return out
