"""``reasons_from`` stops reading terms once its answer is settled, with the same reasons as
reading every term (the loop as it was, kept here)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest

from recommender.core.catalog import Catalog, Item
from recommender.core.features import split_feature
from recommender.core.reasons import MAX_REASONS, _label, reasons_from, say


def reasons_reading_every_term(
    contributions: Sequence[tuple[str, float]],
    catalog: Catalog,
    token_order: Mapping[str, int] | None = None,
    lang: str = "en",
) -> list[str]:
    reasons: list[str] = []
    searched: list[str] = []
    search_slot: int | None = None
    for name, value in contributions:
        if value <= 0.0:
            break
        kind, rest = split_feature(name)
        if kind in ("q", "qp"):
            if kind == "q" and rest not in searched:
                searched.append(rest)
            if search_slot is None:
                search_slot = len(reasons)
                reasons.append("")
            continue
        if len(reasons) >= MAX_REASONS:
            continue
        if kind == "item":
            reasons.append(say(lang, "item", item=_label(rest, catalog)))
        elif kind == "cat":
            reasons.append(say(lang, "cat", cat=rest))
        elif kind == "brand":
            reasons.append(say(lang, "brand", brand=rest))
        elif kind == "bought":
            sub, what = split_feature(rest)
            if sub == "item":
                reasons.append(say(lang, "bought_item", item=_label(what, catalog)))
            else:
                reasons.append(say(lang, "bought_cat", cat=what))
    if search_slot is not None:
        if searched:
            if token_order:
                searched.sort(key=lambda t: token_order.get(t, len(token_order)))
            reasons[search_slot] = say(lang, "searched", q=" ".join(searched))
        else:
            del reasons[search_slot]
    return [r for r in reasons if r][:MAX_REASONS]


FEATURES = [
    "item:tv-1", "item:tv-2", "item:x", "cat:tv", "cat:audio", "brand:lumina",
    "bought:item:tv-1", "bought:cat:tv", "q:tv", "q:cheap", "q:repair", "qp:tv cheap",
    "kind:page_view", "hour:20",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_reasons_are_those_of_reading_every_term(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        _check(rng)


def _check(rng: random.Random) -> None:
    catalog = Catalog({"tv-1": Item("tv-1", title="Lumina 55", category="tv")})
    names = rng.sample(FEATURES, rng.randint(0, len(FEATURES)))
    values = sorted((rng.choice([0.5, 0.25, rng.random(), -0.1, 0.0]) for _ in names), reverse=True)
    terms = list(zip(names, values, strict=True))
    order = (
        {t: rng.randint(0, 5) for t in ("tv", "cheap", "repair")} if rng.random() < 0.5 else None
    )
    lang = rng.choice(["en", "de", "it"])
    assert reasons_from(terms, catalog, order, lang) == reasons_reading_every_term(
        terms, catalog, order, lang
    )
