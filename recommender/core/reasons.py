"""Readable reasons in the request's language (de, en, it), built from real score contributions.

The texts are templates per language; the facts in them (what was searched, which item was
looked at, which of the user's items others viewed beside this one, which category usually
follows a purchase, how buyers rated the item) come from the profile, the model's per-feature
contributions, co-visitation, the learned complements and the rating aggregates, never from
hand-written product knowledge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from recommender.core.catalog import Catalog
from recommender.core.features import split_feature

MAX_REASONS = 3
LANGUAGES = ("en", "de", "it")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "searched": "you searched '{q}'",
        "item": "you looked at {item}",
        "cat": "you are interested in {cat}",
        "brand": "you like {brand}",
        "bought_item": "you bought {item}",
        "bought_cat": "you bought something in {cat}",
        "recent": "you looked at it recently",
        "complement": "people who bought something in {src} often add {cat}",
        "context": "goes well with {item}",
        "covisit": "people who viewed {item} also viewed this",
        "rating": "rated {mean:.1f} by {count} buyers",
        "popular": "popular with other shoppers",
        "chosen": "picked for you",
    },
    "de": {
        "searched": "Sie haben nach '{q}' gesucht",
        "item": "Sie haben sich {item} angesehen",
        "cat": "Sie interessieren sich für {cat}",
        "brand": "Sie mögen {brand}",
        "bought_item": "Sie haben {item} gekauft",
        "bought_cat": "Sie haben etwas aus {cat} gekauft",
        "recent": "Sie haben es sich kürzlich angesehen",
        "complement": "Wer etwas aus {src} kauft, nimmt oft {cat} dazu",
        "context": "passt zu {item}",
        "covisit": "Wer {item} angesehen hat, hat sich auch diesen Artikel angesehen",
        "rating": "mit {mean:.1f} bewertet von {count} Käufern",
        "popular": "beliebt bei anderen Kunden",
        "chosen": "für Sie ausgewählt",
    },
    "it": {
        "searched": "hai cercato '{q}'",
        "item": "hai guardato {item}",
        "cat": "ti interessa {cat}",
        "brand": "ti piace {brand}",
        "bought_item": "hai acquistato {item}",
        "bought_cat": "hai acquistato qualcosa in {cat}",
        "recent": "l'hai guardato di recente",
        "complement": "chi acquista qualcosa in {src} spesso aggiunge {cat}",
        "context": "si abbina a {item}",
        "covisit": "chi ha guardato {item} ha guardato anche questo",
        "rating": "valutato {mean:.1f} da {count} acquirenti",
        "popular": "popolare tra gli altri clienti",
        "chosen": "scelto per te",
    },
}


def language(accept_language: str | None) -> str:
    """The first of de/en/it named in an Accept-Language header (by q-value), else en."""
    if not accept_language:
        return "en"
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, position, tag.strip().lower().split("-")[0]))
    for neg_q, _, tag in sorted(ranked):
        if neg_q < 0 and tag in LANGUAGES:
            return tag
    return "en"


def say(lang: str, key: str, **facts: object) -> str:
    """One message in ``lang`` (English for an unknown language)."""
    return MESSAGES.get(lang, MESSAGES["en"])[key].format(**facts)


def _label(item_id: str, catalog: Catalog) -> str:
    item = catalog.get(item_id)
    return f'"{item.title}"' if item and item.title else item_id


SEARCH_TOKEN, SEARCH_PREFIX, REASON, NO_REASON = range(4)
"""What a feature gives :func:`reasons_from` (:func:`feature_reason`)."""


def feature_reason(name: str, catalog: Catalog, lang: str) -> tuple[int, str]:
    """``(what, text)`` of one feature for :func:`reasons_from`: a search token
    (``SEARCH_TOKEN``, the token), a search prefix (``SEARCH_PREFIX``), a reason of its own
    (``REASON``, its text in ``lang``) or nothing (``NO_REASON``). A request's offers read the
    same few features: :func:`reasons_of_lifts` takes these made once per feature."""
    kind, rest = split_feature(name)
    if kind == "q":
        return SEARCH_TOKEN, rest
    if kind == "qp":
        return SEARCH_PREFIX, ""
    if kind == "item":
        return REASON, say(lang, "item", item=_label(rest, catalog))
    if kind == "cat":
        return REASON, say(lang, "cat", cat=rest)
    if kind == "brand":
        return REASON, say(lang, "brand", brand=rest)
    if kind == "bought":
        sub, what = split_feature(rest)
        if sub == "item":
            return REASON, say(lang, "bought_item", item=_label(what, catalog))
        return REASON, say(lang, "bought_cat", cat=what)
    return NO_REASON, ""


def reasons_of_lifts(
    lifts: Sequence[tuple[float, int]],
    reason_of: Callable[[int], tuple[int, str]],
    token_order: Mapping[str, int] | None,
    lang: str,
) -> list[str]:
    """:func:`reasons_from` of the positive terms ``(-term, j)``, largest first, whose
    features' :func:`feature_reason` is ``reason_of(j)``: the same reasons, without parsing
    a feature name or formatting a text per term."""
    reasons: list[str] = []
    searched: list[str] = []
    search_slot: int | None = None
    for _, j in lifts:
        what, text = reason_of(j)
        if what <= SEARCH_PREFIX:
            if what == SEARCH_TOKEN and text not in searched:
                searched.append(text)
            if search_slot is None:
                search_slot = len(reasons)
                reasons.append("")
            continue
        if len(reasons) >= MAX_REASONS:
            if search_slot is None:
                break  # as reasons_from: nothing later changes the answer
            continue
        if what == REASON:
            reasons.append(text)
    return _with_search(reasons, search_slot, searched, token_order, lang)


def _with_search(
    reasons: list[str],
    search_slot: int | None,
    searched: list[str],
    token_order: Mapping[str, int] | None,
    lang: str,
) -> list[str]:
    """The reasons with the search's slot filled by the searched tokens in the profile's order
    (or dropped when no token was met), empty ones out, at most :data:`MAX_REASONS`."""
    if search_slot is not None:
        if searched:
            _in_search_order(searched, token_order)
            reasons[search_slot] = say(lang, "searched", q=" ".join(searched))
        else:
            del reasons[search_slot]
    return [r for r in reasons if r][:MAX_REASONS]


def _in_search_order(searched: list[str], token_order: Mapping[str, int] | None) -> None:
    """Sort ``searched`` as :func:`reasons_from` does (by ``token_order``, a token it lacks
    after every other, ties in the order met), with C-level keys when it has them all."""
    if not token_order:
        return
    if all(map(token_order.__contains__, searched)):
        searched.sort(key=token_order.__getitem__)
    else:
        searched.sort(key=lambda t: token_order.get(t, len(token_order)))


def picked_reasons(
    picked: Sequence[int],
    tokens: Sequence[int],
    per_feature: Sequence[tuple[int, str]],
    token_order: Mapping[str, int] | None,
    lang: str,
) -> list[str]:
    """:func:`reasons_of_lifts` from what ``zmot_native.pick_reasons`` picked of the terms:
    the row positions of the reasons in order (-1: the search's place) and of the search
    tokens met, in the order met (``per_feature``: each row feature's
    :func:`feature_reason`)."""
    reasons = [per_feature[j][1] if j >= 0 else "" for j in picked]
    search_slot = picked.index(-1) if -1 in picked else None
    searched = [per_feature[j][1] for j in tokens]
    return _with_search(reasons, search_slot, searched, token_order, lang)


def reasons_from(
    contributions: Sequence[tuple[str, float]],
    catalog: Catalog,
    token_order: Mapping[str, int] | None = None,
    lang: str = "en",
) -> list[str]:
    """Readable reasons from the positive per-feature terms of a score, strongest first.

    Search tokens are gathered into one reason, in the order the profile first saw them
    (``token_order``), so that "fernseher" and "reparatur" read as the search they came from.
    """
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
            if search_slot is None:
                # full without a search: a later search would only add a slot past the
                # first MAX_REASONS, which are returned (nothing later changes the answer)
                break
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
    return _with_search(reasons, search_slot, searched, token_order, lang)
