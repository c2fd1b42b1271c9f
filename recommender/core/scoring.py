"""Scores of every item for a live profile, and the form decided offers are served in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.core.catalog import Item
from recommender.core.features import item_weights
from recommender.core.model import Model
from recommender.core.native import native as native_function
from recommender.core.profile import Profile

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Priced = tuple[F64, F64]
"""Item scores and propensities of every model item, as :meth:`ItemScorer.score` gives them."""


@dataclass(frozen=True)
class ServedOffer:
    """An offer resolved to the concrete item it stands for (a category offer names its best
    item of that category)."""

    offer_id: str
    item_id: str
    title: str
    value: float = 1.0


@dataclass(frozen=True)
class ScoredOffer:
    """One offer as served: the model score and the reasons behind it."""

    offer: ServedOffer
    item: Item | None
    score: float
    reasons: list[str]
    debug: dict[str, float | None] | None = None
    """The arbitration formula's parts (propensity, value, context_weight, lever, priority)."""
    policy: str = "greedy"
    """Which policy chose the offer (``greedy`` or ``explore``: recommender.core.exploration)."""
    probability: float = 1.0
    """Exact probability that the policy chose this offer for its slot."""


@dataclass(frozen=True)
class Decision:
    """The offers for one request; ``fallback`` when they are not personalised."""

    offers: list[ScoredOffer]
    fallback: bool
    stage: str = "stimulus"
    decision_id: str = ""
    note: str | None = None
    """Why the offers are what they are when not obvious (e.g. nothing cleared the floor)."""


def items_seen(
    weights: Mapping[str, float], item_index: Mapping[str, int]
) -> list[tuple[int, float]]:
    """(model position, weight) of every ``item:<id>`` feature of the profile the model knows."""
    return [(item_index[item], w) for item, w in item_weights(weights) if item in item_index]


def relative_item_weights(
    weights: Mapping[str, float], item_index: Mapping[str, int], n_items: int
) -> npt.NDArray[np.float64]:
    """Per model item, its weight in the profile relative to the strongest item the model
    knows (0 for the rest): the ``recent`` input of the calibration, in training and serving."""
    return _relative(items_seen(weights, item_index), n_items)


def _relative(seen: list[tuple[int, float]], n_items: int) -> F64:
    """:func:`relative_item_weights` of the profile's :func:`items_seen`."""
    recent = np.zeros(n_items)
    if seen:
        top = max(w for _, w in seen)
        for position, w in seen:
            recent[position] = w / top
    return recent


class ItemScorer:
    """Scores every item for a profile: the model's opinion, blended with the profile's memory.

    The model's scores are standardised per request (z-scores over all items) so that the
    blend weight means the same for every user. ``recent_boost`` then adds, for each item the
    profile itself holds (``item:<id>`` features: what the user viewed, carted or bought,
    decayed), ``recent_boost * weight / strongest item weight``: real shoppers return to what
    they looked at, and the evaluation decides how much that should count. Items bought within
    ``purchase_exclusion_s`` score ``-inf``.
    """

    def __init__(
        self, model: Model, *, purchase_exclusion_s: float, recent_boost: float = 0.0
    ) -> None:
        self.model = model
        self.purchase_exclusion_s = purchase_exclusion_s
        self.recent_boost = recent_boost

    def excluded(self, profile: Profile | None, now: float) -> set[str]:
        """Items bought recently enough not to be offered again."""
        if profile is None:
            return set()
        return {
            item for item, ts in profile.purchases.items() if now - ts < self.purchase_exclusion_s
        }

    def scores(self, profile: Profile | None, now: float) -> npt.NDArray[np.float64] | None:
        """Blended score of every model item, or None when the profile says nothing known."""
        if profile is None:
            return None
        weights = profile.normalised()
        raw = self.model.scores(weights) if weights else None
        if raw is None:
            return None
        return self.blend(raw, weights, profile, now)

    def blend(
        self,
        raw: npt.NDArray[np.float32],
        weights: Mapping[str, float],
        profile: Profile,
        now: float,
    ) -> npt.NDArray[np.float64]:
        """:meth:`scores` from the model's raw scores for ``weights`` (the profile's
        normalised weights), for a caller that needs ``raw`` too and computes it once."""
        centred, standard = centred_scores(raw)
        seen = items_seen(weights, self.model.item_index) if self.recent_boost > 0.0 else None
        return self._blend_centred(centred, seen, profile, now, standard)

    def _blend_centred(
        self,
        centred: F64,
        seen: list[tuple[int, float]] | None,
        profile: Profile,
        now: float,
        standard: F64 | None = None,
    ) -> F64:
        """:meth:`blend` from the centred raw scores (:func:`_centred`, left unchanged) and
        the profile's :func:`items_seen` (None when ``recent_boost`` is 0); ``standard``: the
        centred scores over their spread when :func:`centred_scores` gave them (boosted in
        place)."""
        if standard is not None:
            scores = standard
        else:
            spread = _std(centred)
            scores = centred / spread if spread > 0 else centred.copy()
        if seen:
            boost = self.recent_boost
            strongest = max(w for _, w in seen)
            for position, w in seen:
                scores[position] += boost * w / strongest
        if profile.purchases:
            index = self.model.item_index
            for item in self.excluded(profile, now):
                bought = index.get(item)
                if bought is not None:
                    scores[bought] = -np.inf
        return scores

    def score(self, raw: F32, weights: Mapping[str, float], profile: Profile, now: float) -> Priced:
        """What arbitration prices, for every model item: the item score (:meth:`blend`) and
        the propensity (the model's calibration, :func:`propensities`)."""
        # Both centre the raw scores and read the profile's items: done once here, with the
        # same operations as blend() and propensities() (the same floats).
        model = self.model
        centred, standard = centred_scores(raw)
        seen = items_seen(weights, model.item_index)
        blended = self._blend_centred(
            centred, seen if self.recent_boost > 0.0 else None, profile, now, standard
        )
        recent = _relative(seen, len(model.item_ids))
        return blended, model.calibration.probability(centred, recent)

    def lifted_by(self, weights: Mapping[str, float], item_id: str) -> str | None:
        """The profile item whose co-visitation most lifted ``item_id`` (for a reason); this
        scorer has no co-visitation signal."""
        return None

    def lifted_by_many(
        self, weights: Mapping[str, float], item_ids: Sequence[str]
    ) -> list[str | None]:
        """:meth:`lifted_by` of each of ``item_ids``."""
        return [self.lifted_by(weights, item) for item in item_ids]

    def top(self, profile: Profile | None, k: int, now: float) -> list[int] | None:
        """Indices of the k best items (fewer if fewer can be offered), or None as in scores."""
        scores = self.scores(profile, now)
        return None if scores is None else top_k(scores, k)


def propensities(
    model: Model, raw: npt.NDArray[np.float32], weights: Mapping[str, float]
) -> npt.NDArray[np.float64]:
    """Calibrated probability of every model item from the model's raw scores for ``weights``
    and the profile's own items (relative to the strongest)."""
    recent = relative_item_weights(weights, model.item_index, len(model.item_ids))
    margin = _centred(raw)  # comparable across users: their bias term cancels
    return model.calibration.probability(margin, recent)


def centred_scores(raw: npt.NDArray[np.float32]) -> tuple[F64, F64 | None]:
    """:func:`_centred` of ``raw`` and, from ``zmot_native.centred_scores`` when the native
    module serves a 1-D float32 array, the standardised scores :meth:`ItemScorer.blend`
    starts from (centred / spread, else a copy): numpy's pairwise sums, the same floats, in one
    call instead of nine; else (``_centred(raw)``, None) and the blend computes them."""
    native = native_function("centred_scores")
    if native is None or raw.dtype != np.float32 or raw.ndim != 1 or not len(raw):
        return _centred(raw), None
    centred, standard = native(raw)
    return centred, standard


def _centred(raw: npt.NDArray[np.float32]) -> F64:
    """``raw`` in float64 minus its mean (as ``x = raw.astype(float64); x -= x.mean()``)."""
    out = raw.astype(np.float64)
    out -= np.add.reduce(out) / out.shape[0]  # ndarray.mean's sum and division, less overhead
    return out


def _std(x: F64) -> np.float64:
    """``x.std()`` with the same operations (pairwise sums), without numpy's generic wrapper."""
    n = x.shape[0]
    d = x - np.add.reduce(x) / n
    np.multiply(d, d, out=d)
    spread: np.float64 = np.sqrt(np.add.reduce(d) / n)
    return spread


def top_k(scores: npt.NDArray[np.float64], k: int) -> list[int]:
    """Indices of the k largest finite scores, best first (ties: lower index first)."""
    n = min(k, int(np.isfinite(scores).sum()))
    if n <= 0:
        return []
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.lexsort((top, -scores[top]))]
    return [int(i) for i in top]
