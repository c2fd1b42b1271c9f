"""The hybrid ranker's serving path as it was before it was made cheaper (commit 4b7b257),
kept frozen as the oracle of ``test_hybrid_equivalence.py``: the optimised
:mod:`recommender.core.hybrid` must give the same candidates, signals, scores and
co-visitation reasons. Not used by the project; do not edit except to follow a deliberate
change of the ranking itself."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.core.features import category_weights, item_feature
from recommender.core.hybrid import (
    BASE,
    COVISIT,
    HOUR,
    HybridScorer,
    HybridTables,
    _best,
    _vote_rows,
    own_items,
)
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.scoring import ItemScorer, Priced

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass
class Universe:
    """The tables' items joined with a model's (model items first, in the model's order, then
    table items the model does not know): candidates are positions in it, so serving never
    looks an item up by name more than once. Built once per (tables, model) (:func:`universe`)."""

    names: list[str]
    index: dict[str, int]
    n_model: int
    to_table: I64
    """Universe position -> table position (-1: not in the tables); one more slot, -1, at the
    end for candidates outside the universe."""
    from_table: I64
    trending: I64
    trending_in: dict[str, I64]


def universe(tables: HybridTables, model: Model | None) -> Universe:
    """The :class:`Universe` of ``tables`` and ``model`` (built on every call here)."""
    names = list(model.item_ids) if model is not None else []
    index = dict(model.item_index) if model is not None else {}
    n_model = len(names)
    for item in tables.items:
        if item not in index:
            index[item] = len(names)
            names.append(item)
    to_table = np.full(len(names) + 1, -1, dtype=np.int64)
    from_table = np.array([index[item] for item in tables.items], dtype=np.int64)
    to_table[from_table] = np.arange(len(tables.items))

    def positions(items: list[str]) -> I64:
        return np.array([index[item] for item in items], dtype=np.int64)

    made = Universe(
        names=names,
        index=index,
        n_model=n_model,
        to_table=to_table,
        from_table=from_table,
        trending=positions(tables.trending),
        trending_in={c: positions(items) for c, items in tables.trending_in.items()},
    )
    return made


def candidate_rows(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None = None,
    weights: Mapping[str, float] | None = None,
) -> tuple[I64, list[str], npt.NDArray[np.intp], F64]:
    """The candidates as :class:`Universe` positions (positions from ``len(names)`` on are
    the profile's items outside it, named in the second value), their model positions (-1:
    unknown to the model) and signals: what :func:`candidates` names, without the names.
    ``weights``: the profile's normalised weights when the caller has them."""
    p = tables.params
    u = universe(tables, model)
    size = len(u.names)
    if weights is None:
        weights = profile.normalised()
    own = own_items(weights)
    if z is None and model is not None:
        z = ItemScorer(model, purchase_exclusion_s=0.0).scores(profile, now)
    extra: list[str] = []
    index = u.index

    def positions(items: list[str]) -> I64:
        """Universe positions of ``items``; each item outside it takes the next position
        after the universe (named in ``extra``)."""
        found = [index.get(item, -1) for item in items]
        if -1 in found:
            for i, item in enumerate(items):
                if found[i] < 0:
                    found[i] = size + len(extra)
                    extra.append(item)
        return np.array(found, dtype=np.int64)

    own_w = np.array([w for _, w in own], dtype=np.float64)
    own_at = positions([item for item, _ in own])
    recent = sorted(profile.touched.items(), key=lambda kv: (-kv[1], kv[0]))
    recent_at = positions([item for item, _ in recent])
    table_rows = u.to_table[np.minimum(own_at, size)]
    known = table_rows >= 0
    votes = _vote_rows(tables, table_rows[known], own_w[known], sum(w for _, w in own))
    voters = u.to_table[np.minimum(recent_at[: p.recent_voters], size)]
    voting = np.flatnonzero(voters >= 0)
    recency = 1.0 / (1.0 + voting.astype(np.float64))  # the i-th newest votes 1/(i+1)
    fresh = _vote_rows(tables, voters[voting], recency, 1.0)
    categories = sorted(((w, name) for name, w in category_weights(weights)), reverse=True)
    parts = [own_at[: p.own_items], recent_at]
    voted = np.flatnonzero(votes > 0)  # the padding slot is 0, never voted
    if len(voted):
        best = voted[np.lexsort((tables.name_rank[voted], -votes[voted]))[: p.covisit_items]]
        parts.append(u.from_table[best])
    voted = np.flatnonzero(fresh > 0)
    if len(voted):
        best = voted[np.lexsort((tables.name_rank[voted], -fresh[voted]))]
        parts.append(u.from_table[best[: p.recent_covisit_items]])
    if z is not None and model is not None:
        parts.append(_best(z, p.model_items))
    parts.append(u.trending)
    parts.append(_strong_trending(u, categories, len(u.trending)))
    # first occurrences in order: a dict keeps insertion order and costs O(candidates), not
    # O(catalogue) like a position array would
    order = list(dict.fromkeys(np.concatenate(parts).tolist()))[: p.max_candidates]
    picked = np.array(order, dtype=np.int64)
    row_of = {j: r for r, j in enumerate(order)}

    n = len(picked)
    at = np.where(picked < u.n_model, picked, -1).astype(np.intp)
    ti = u.to_table[np.minimum(picked, size)]
    # -1 (unknown) reads the last slot of each padded array: 0, or no category
    rows = np.zeros((n, len(BASE)))
    if z is not None:
        rows[:, 0] = np.append(z, 0.0)[at]
    rows[:, 1] = at >= 0
    rows[:, 2] = votes[ti]
    if own:
        r = np.fromiter((row_of.get(j, -1) for j in own_at.tolist()), np.int64, len(own_at))
        hit = r >= 0
        w = own_w
        landmark = profile.landmark
        factor = 0.0 if landmark is None else 2.0 ** ((landmark - now) / tables.half_life_s)
        raw = np.fromiter(
            (profile.weights.get(item_feature(item), 0.0) for item, _ in own),
            dtype=np.float64,
            count=len(own),
        )
        rh = r[hit]
        rows[rh, 3] = 1.0
        rows[rh, 4] = (w / w[0])[hit] if w[0] else 0.0
        rows[rh, 5] = 1.0 / (1.0 + np.flatnonzero(hit))
        rows[rh, 6] = np.log1p(raw * factor)[hit]
    if recent:
        r = np.fromiter((row_of.get(j, -1) for j in recent_at.tolist()), np.int64, len(recent_at))
        hit = r >= 0
        touched_at = np.fromiter((t for _, t in recent), dtype=np.float64, count=len(recent))
        rh = r[hit]
        rows[rh, 12] = 1.0
        rows[rh, 13] = 1.0 / (1.0 + np.flatnonzero(hit))
        rows[rh, 14] = np.log1p(np.maximum(0.0, now - touched_at) / HOUR)[hit]
    for item, bought in profile.purchases.items():
        j = u.index.get(item)
        if j is None and item in extra:
            j = size + extra.index(item)
        r_ = row_of.get(j, -1) if j is not None else -1
        if r_ >= 0:
            rows[r_, 7] = 1.0
            rows[r_, 8] = math.log1p(max(0.0, now - bought) / HOUR)
    rows[:, 9] = tables.popularity_pad[ti]
    rows[:, 10] = tables.trend_pad[ti]
    rows[:, 15] = fresh[ti]
    if len(voters):
        kinds = tables.item_category_pad[voters]  # -1 (no category) counts in no category
        kinds = kinds[kinds >= 0]
        if len(kinds):
            share = np.bincount(kinds, minlength=len(tables.categories) + 1) / len(voters)
            share[-1] = 0.0
            rows[:, 16] = share[tables.item_category_pad[ti]]
    if categories and categories[0][0]:
        share = np.zeros(len(tables.categories) + 1)  # last: no category
        for w_, name in categories:
            c = tables.category_index.get(name)
            if c is not None:
                share[c] = w_ / categories[0][0]
        rows[:, 11] = share[tables.item_category_pad[ti]]
    return picked, extra, at, shapes(rows)


_TOUCH_BINS = np.array([0.5, 1.5, 2.5, 4.5, 9.5])
"""Upper edges of the recency ranks (0 = newest) of ``touch_1`` ... ``touch_6_10``."""
_AT = {name: j for j, name in enumerate(BASE)}


def shapes(base: F64) -> F64:
    """``base`` (columns :data:`BASE`) with the :data:`SHAPES` columns appended."""
    touched = base[:, _AT["touched"]] > 0
    # touch_rank is 1 / (1 + rank): back to the rank, then one column per bin
    rank = np.where(touched, 1.0 / np.maximum(base[:, _AT["touch_rank"]], 1e-12) - 1.0, 0.0)
    bins = np.zeros((len(base), len(_TOUCH_BINS) + 1))
    where = np.flatnonzero(touched)
    bins[where, np.searchsorted(_TOUCH_BINS, np.rint(rank[where]))] = 1.0
    hours = base[:, _AT["hours_since_touch"]] * touched
    out: F64 = np.column_stack(
        (
            base,
            np.log1p(100.0 * base[:, _AT["covisit"]]),
            np.log1p(100.0 * base[:, _AT["covisit_recent"]]),
            np.log1p(100.0 * base[:, _AT["own_share"]]),
            bins,
            hours * hours,
            base[:, _AT["own"]] * base[:, _AT["model"]],
            base[:, _AT["category"]] * base[:, _AT["popularity"]],
        )
    )
    return out


def _strong_trending(u: Universe, categories: list[tuple[float, str]], room: int) -> I64:
    """Trending items of the strongest categories, in category order, each once, at most
    ``room`` of them."""
    seen: dict[int, None] = {}
    for _, category in categories:
        if len(seen) >= room:
            break
        for j in u.trending_in.get(category, np.zeros(0, dtype=np.int64)).tolist():
            if len(seen) >= room:
                break
            seen.setdefault(j, None)
    return np.fromiter(seen, dtype=np.int64, count=len(seen))


class ReferenceScorer(HybridScorer):
    """``HybridScorer`` with the candidates and co-visitation reasons as they were (the
    pricing of the signals, :meth:`HybridScorer.priced`, did not change)."""

    def __init__(self, model: Model, tables: HybridTables, *, purchase_exclusion_s: float) -> None:
        super().__init__(model, tables, purchase_exclusion_s=purchase_exclusion_s)
        # the neighbour matrix by column: who has item j among its neighbours (the tables
        # kept these arrays until lifted_by searched the edges by (voter, item) instead)
        n = len(tables.items)
        by_target = np.argsort(tables.neighbour_idx, kind="stable")
        sources = np.repeat(np.arange(n), np.diff(tables.neighbour_ptr))
        self.voter_ptr = np.concatenate(
            ([0], np.cumsum(np.bincount(tables.neighbour_idx, minlength=n)))
        )
        self.voter_idx = sources[by_target]
        self.voter_w = tables.neighbour_w64[by_target]

    def score(self, raw: F32, weights: Mapping[str, float], profile: Profile, now: float) -> Priced:
        z = self.plain.blend(raw, weights, profile, now)
        _, _, at, rows = candidate_rows(self.tables, self.model, profile, now, z, weights)
        return self.priced(z, at, rows, profile, now)

    def blend(self, raw: F32, weights: Mapping[str, float], profile: Profile, now: float) -> F64:
        return self.score(raw, weights, profile, now)[0]

    def lifted_by(self, weights: Mapping[str, float], item_id: str) -> str | None:
        """The profile item whose co-visitation vote for ``item_id`` is the largest (ties: the
        stronger item, then the id), when the ranker counts co-visitation for an item (a
        positive weight) and some item voted."""
        t = self.tables
        target = t.index.get(item_id)
        if target is None or t.coef[COVISIT] <= 0:
            return None
        lo, hi = int(self.voter_ptr[target]), int(self.voter_ptr[target + 1])
        best: tuple[float, float, str] | None = None
        edges = zip(self.voter_idx[lo:hi].tolist(), self.voter_w[lo:hi].tolist(), strict=True)
        for j, edge in edges:
            item = t.items[j]
            w = weights.get(item_feature(item), 0.0)
            if w > 0 and item != item_id:
                key = (-w * edge, -w, item)
                if best is None or key < best:
                    best = key
        return None if best is None else best[2]
