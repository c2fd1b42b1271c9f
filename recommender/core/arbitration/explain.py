"""What an answer says about itself: the reasons of each offer, social proof, the debug parts
of the priority, and the decision log line."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from recommender.core.arbitration.table import ItemTable
from recommender.core.arbitration.types import Candidate, OfferRequest, RatingLike
from recommender.core.features import item_feature, token_positions
from recommender.core.model import Model, UserRow
from recommender.core.native import native as native_function
from recommender.core.profile import Profile
from recommender.core.reasons import (
    MAX_REASONS,
    feature_reason,
    picked_reasons,
    reasons_from,
    reasons_of_lifts,
    say,
)
from recommender.core.scoring import Decision, ItemScorer, ScoredOffer, ServedOffer

log = logging.getLogger("zmot.decisions")

_ID_POOL = 256
"""Decision ids drawn at once (one ``os.urandom`` call per 256 ids)."""
_ids: list[str] = []


def _drop_ids() -> None:
    _ids.clear()  # a forked child draws its own ids, never its parent's


os.register_at_fork(after_in_child=_drop_ids)


def _draw_ids() -> None:
    pool = bytearray(os.urandom(16 * _ID_POOL))
    for at in range(0, len(pool), 16):
        pool[at + 6] = (pool[at + 6] & 0x0F) | 0x40  # version 4
        pool[at + 8] = (pool[at + 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = pool.hex()
    _ids.extend(text[at : at + 32] for at in range(0, len(text), 32))
    _ids.reverse()  # popped from the end in the order drawn


def new_decision_id() -> str:
    """A random UUID version 4 as 32 hex digits, as ``uuid.uuid4().hex``: the same 122 random
    bits from ``os.urandom``, drawn 256 ids at a time (a syscall and a ``UUID`` object per
    decision were a few microseconds of every answer)."""
    if not _ids:
        _draw_ids()
    return _ids.pop()


def _pick_reasons() -> Any:
    """``zmot_native.pick_reasons`` when the native module serves and has it, else None
    (:meth:`Explainer.reasons_many` walks the terms in Python: the same reasons)."""
    return native_function("pick_reasons")


class Ask:
    """The type of :data:`ASK`."""


ASK = Ask()
"""``Explainer.reasons(source=ASK)``: ask the scorer which item lifted the offer."""


def search_order(profile: Profile) -> dict[str, int]:
    """Each search token of the profile by the order the profile first saw it."""
    return token_positions(profile.weights)


class Explainer:
    """Reasons from the model's per-feature contributions, the profile, co-visitation (when
    the scorer has it) and the complements."""

    def __init__(
        self,
        model: Model,
        items: ItemTable,
        recent_boost: float,
        scorer: ItemScorer | None = None,
    ) -> None:
        self.model = model
        self.items = items
        self.recent_boost = recent_boost
        self.scorer = scorer
        self._feature_reasons: dict[str, dict[int, tuple[int, str]]] = {}
        """language -> model feature index -> its :func:`feature_reason` (made on first use:
        the model's vocabulary bounds it)."""
        self._covisit: dict[tuple[str, str], str] = {}
        """(language, item) -> the co-visitation reason naming the item."""
        self._row_reasons: tuple[str, list[int], list[tuple[int, str]], bytes] | None = None
        """The feature reasons of the row last explained (language, its features)."""

    def reasons(
        self,
        cand: Candidate,
        weights: Mapping[str, float],
        token_order: Mapping[str, int],
        origin: Mapping[str, str],
        request: OfferRequest,
        row: UserRow | None = None,
        source: str | None | Ask = ASK,
    ) -> list[str]:
        """At most :data:`MAX_REASONS` reasons for a personalised offer, strongest first
        (``row``: the profile's ``Model.user_row``, computed once per request; ``source``: the
        scorer's ``lifted_by`` for the offer's item when the caller asked it for all offers at
        once, :data:`ASK` to ask here)."""
        reasons = reasons_from(
            self.model.contributions(weights, cand.item, row),
            self.items.catalog,
            token_order,
            request.lang,
        )
        if self.recent_boost > 0 and weights.get(item_feature(cand.item_id), 0.0) > 0:
            reasons = [say(request.lang, "recent"), *reasons]
        if isinstance(source, Ask):
            source = self.scorer.lifted_by(weights, cand.item_id) if self.scorer else None
        if source is not None:
            label = self.items.title_of(source)
            reasons = [say(request.lang, "covisit", item=label), *reasons]
        if cand.category is not None and cand.category in origin:
            src = origin[cand.category]
            if request.context_item and src == self.items.category_of(request.context_item):
                label = self.items.title_of(request.context_item)
                reasons = [say(request.lang, "context", item=label), *reasons]
            else:
                reasons.append(say(request.lang, "complement", src=src, cat=cand.category))
        return reasons[:MAX_REASONS]

    def reasons_many(
        self,
        cands: Sequence[Candidate],
        weights: Mapping[str, float],
        token_order: Mapping[str, int],
        origin: Mapping[str, str],
        request: OfferRequest,
        row: UserRow | None,
        sources: Sequence[str | None],
    ) -> list[list[str]]:
        """:meth:`reasons` of each of an answer's offers (``sources``: the scorer's
        ``lifted_by_many`` of their items): the same reasons, with each feature's reason
        (:func:`~recommender.core.reasons.feature_reason`) and each co-visitation text made
        once per language instead of per term per offer."""
        lang = request.lang
        pick = _pick_reasons()
        out: list[list[str]] = []
        for cand, source in zip(cands, sources, strict=True):
            if pick is None:
                lifts, at = self.model.lifts(weights, cand.item, row)
                per_feature = self._per_feature(lang, at)[0]
                reasons = reasons_of_lifts(lifts, per_feature.__getitem__, token_order, lang)
            else:
                found = self.model.terms(weights, cand.item, row)
                reasons = []
                if found is not None:
                    per_feature, what = self._per_feature(lang, found[1])
                    picked, tokens = pick(found[0], what, MAX_REASONS)
                    reasons = picked_reasons(picked, tokens, per_feature, token_order, lang)
            out.append(self._framed(reasons, cand, weights, origin, request, source))
        return out

    def _per_feature(self, lang: str, at: list[int]) -> tuple[list[tuple[int, str]], bytes]:
        """The :func:`~recommender.core.reasons.feature_reason` of each feature of a row
        (``at``: its feature indices), and what each gives as bytes (``pick_reasons``'s);
        kept for the row last asked about (a request's offers share it)."""
        held = self._row_reasons
        if held is not None and held[0] == lang and held[1] is at:
            return held[2], held[3]
        cache = self._feature_reasons.get(lang)
        if cache is None:
            cache = self._feature_reasons[lang] = {}
        names, catalog = self.model.feature_names, self.items.catalog
        per_feature = []
        for f in at:
            hit = cache.get(f)
            if hit is None:
                hit = cache[f] = feature_reason(names[f], catalog, lang)
            per_feature.append(hit)
        what = bytes([w for w, _ in per_feature])
        self._row_reasons = (lang, at, per_feature, what)
        return per_feature, what

    def _framed(
        self,
        reasons: list[str],
        cand: Candidate,
        weights: Mapping[str, float],
        origin: Mapping[str, str],
        request: OfferRequest,
        source: str | None,
    ) -> list[str]:
        """The model's ``reasons`` for ``cand`` with what :meth:`reasons` puts around them:
        recently seen, co-visitation (``source``), context or complement."""
        lang = request.lang
        if self.recent_boost > 0 and weights.get(item_feature(cand.item_id), 0.0) > 0:
            reasons = [say(lang, "recent"), *reasons]
        if source is not None:
            text = self._covisit.get((lang, source))
            if text is None:
                label = self.items.title_of(source)
                text = self._covisit[(lang, source)] = say(lang, "covisit", item=label)
            reasons = [text, *reasons]
        if cand.category is not None and cand.category in origin:
            src = origin[cand.category]
            if request.context_item and src == self.items.category_of(request.context_item):
                label = self.items.title_of(request.context_item)
                reasons = [say(lang, "context", item=label), *reasons]
            else:
                reasons.append(say(lang, "complement", src=src, cat=cand.category))
        return reasons[:MAX_REASONS]

    def served(
        self,
        cand: Candidate,
        reasons: list[str],
        request: OfferRequest,
        policy: str,
        probability: float,
    ) -> ScoredOffer:
        """The offer as served, with the priority's parts when the request asks to debug."""
        debug: dict[str, float | None] | None = None
        if request.debug:
            debug = {
                "propensity": cand.propensity,
                "value": cand.spec.value,
                "context_weight": cand.context_weight,
                "lever": cand.spec.lever,
                "priority": cand.priority,
                **cand.parts,
            }
        offer = ServedOffer(cand.spec.offer_id, cand.item_id, cand.spec.title, cand.spec.value)
        return ScoredOffer(
            offer,
            self.items.catalog.get(cand.item_id),
            cand.score,
            reasons,
            debug,
            policy,
            probability,
        )


def with_ratings(
    decision: Decision, ratings: Mapping[str, RatingLike], lang: str, min_ratings: int
) -> Decision:
    """The decision with social proof ("rated 4.6 by 120 buyers") as the last reason of each
    offer whose item has at least ``min_ratings`` ratings."""
    out = []
    proved = False
    for s in decision.offers:
        rating = ratings.get(s.offer.item_id)
        if rating is not None and rating.count >= min_ratings:
            proof = say(lang, "rating", mean=rating.mean, count=rating.count)
            s = replace(s, reasons=[*s.reasons[: MAX_REASONS - 1], proof])
            proved = True
        out.append(s)
    # no offer with enough ratings: the decision as it was (a frozen copy of it otherwise)
    return replace(decision, offers=out) if proved else decision


def finish(
    offers: list[ScoredOffer],
    fallback: bool,
    stage: str,
    request: OfferRequest,
    note: str | None,
) -> Decision:
    """The decision with a fresh id, logged (offers, policies, probabilities) for evaluation."""
    decision_id = new_decision_id()
    if log.isEnabledFor(logging.INFO):
        log.info(
            "decision %s placement=%s stage=%s fallback=%s experiment=%s arm=%s offers=%s",
            decision_id,
            request.placement,
            stage,
            fallback,
            request.experiment,
            request.arm,
            [(s.offer.offer_id, s.policy, round(s.probability, 6)) for s in offers],
        )
    return Decision(offers, fallback, stage, decision_id, note)
