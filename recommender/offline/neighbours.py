"""Item-neighbourhood baselines for the replay evaluation: co-visitation and session-kNN.

Both learn from the TRAINING events only and then rank, at each prediction moment, from the
shopper's own events so far (train and test, exactly the history ``recent`` reads); nothing
else of the test period reaches them. Both are :data:`recommender.offline.evaluation.Recommender`
callables, plugged in through ``evaluate(extra_methods=...)`` (``zmot evaluate`` always adds
them, see :func:`neighbour_methods`).

* ``covisit``: items seen shortly after one another by the same shopper are neighbours; a
  shopper is offered the neighbours of their most recent items.
* ``session_knn``: V-SkNN (Ludewig & Jannach, "Evaluation of session-based recommendation
  algorithms", 2018): the past sessions most similar to the shopper's latest session vote for
  the items they contain.

The shopper's own items may appear in both lists (a neighbour of the last item is often an
item the shopper saw before), as in ``recent``; ``--items new`` measures what they find
beyond them. Lists are not padded with popular items: they hold what the neighbourhood knows,
so they are empty for a shopper whose items never occurred in training.

Parameters are fixed defaults from the literature and common practice, not tuned on any data
set here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.core.events import ITEM_EVENTS, Event
from recommender.core.features import DEFAULT_KIND_WEIGHTS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CovisitParams:
    """Co-visitation settings.

    ``backward`` weighs the reverse direction of a pair: with 0 the neighbours of A are only
    what shoppers saw *after* A, with 1 the counts are symmetric. The default 1 was chosen on
    a validation split cut from the training part of the Taobao and REES46 samples (first 80%
    of the training time fits, the last 20% validates; the test split was not read): symmetric
    counts gave HR@10 0.105 vs 0.097 directional on Taobao and 0.120 vs 0.114 on REES46.
    Shoppers compare back and forth, so "seen before B" is nearly as telling as "seen after".
    """

    window: int = 5
    """A pair is at most this many (collapsed) item events apart."""
    max_gap_s: float = 24 * 3600.0
    """...and at most this far apart in time."""
    backward: float = 1.0
    top_n: int = 50
    """Neighbours kept per item (the strongest)."""
    recent_items: int = 10
    """The shopper's newest distinct items that vote; the i-th newest with weight 1/(i+1)."""


@dataclass(frozen=True)
class SessionKnnParams:
    """V-SkNN settings (the paper's defaults where it has them)."""

    gap_s: float = 30 * 60.0
    """Inactivity that ends a session."""
    sample: int = 500
    """Candidate sessions: the most recent ones that share an item with the query."""
    k: int = 100
    """Neighbour sessions that vote."""
    query_items: int = 20
    """The latest session's newest distinct items that form the query."""


def _item_runs(
    events: Sequence[Event], kind_weights: Mapping[str, float]
) -> tuple[list[str], I64, I64, F64, F64]:
    """Every user's item events in time order as flat arrays (items as sorted indices):
    ``(items, user, item, ts, weight)``; a run of the same item by the same user is one entry
    (its first time, its strongest kind), so repeated views neither fill the window nor count
    twice."""
    rows = sorted(
        (e.user_id, e.ts or 0.0, i)
        for i, e in enumerate(events)
        if e.type in ITEM_EVENTS and e.item_id is not None
    )
    items = sorted({events[i].item_id or "" for _, _, i in rows})
    index = {item: j for j, item in enumerate(items)}
    users: dict[str, int] = {}
    user = np.array([users.setdefault(u, len(users)) for u, _, _ in rows], dtype=np.int64)
    item = np.array([index[events[i].item_id or ""] for _, _, i in rows], dtype=np.int64)
    ts = np.array([t for _, t, _ in rows], dtype=np.float64)
    weight = np.array([kind_weights.get(events[i].type, 0.0) for _, _, i in rows])
    if not rows:
        return items, user, item, ts, weight
    start = np.ones(len(rows), dtype=bool)
    start[1:] = (user[1:] != user[:-1]) | (item[1:] != item[:-1])
    first = np.flatnonzero(start)
    return items, user[first], item[first], ts[first], np.maximum.reduceat(weight, first)


DENSE_ITEMS = 1 << 16
"""Up to this many items, scores are summed in a dense vector (cheaper than np.unique)."""


def _totals(candidates: I64, scores: F64, n_items: int) -> tuple[I64, F64]:
    """Summed scores of repeated candidates: (distinct candidates, their positive totals)."""
    if n_items <= DENSE_ITEMS:
        total = np.bincount(candidates, weights=scores, minlength=n_items)
        unique = np.flatnonzero(total > 0)
        return unique.astype(np.int64), total[unique].astype(np.float64)
    unique, inverse = np.unique(candidates, return_inverse=True)
    total = np.bincount(inverse, weights=scores)
    keep = total > 0
    return unique[keep].astype(np.int64), total[keep].astype(np.float64)


def _best(candidates: I64, scores: F64, depth: int, n_items: int) -> I64:
    """Summed scores of repeated candidates; the ``depth`` best, ties by item index."""
    if candidates.size == 0:
        return candidates
    unique, total = _totals(candidates, scores, n_items)
    order = np.lexsort((unique, -total))[:depth]
    best: I64 = unique[order]
    return best


def _latest_items(events: Sequence[Event], limit: int, gap_s: float | None = None) -> list[str]:
    """The shopper's newest distinct items, newest first; with ``gap_s`` only those of the
    latest session (back to the first pause longer than ``gap_s``)."""
    out: dict[str, None] = {}
    later: float | None = None
    for event in reversed(events):
        if event.type not in ITEM_EVENTS or event.item_id is None:
            continue
        ts = event.ts or 0.0
        if gap_s is not None and later is not None and later - ts > gap_s:
            break
        later = ts
        out.setdefault(event.item_id, None)
        if len(out) >= limit:
            break
    return list(out)


EMPTY_VOTES: tuple[I64, F64] = (np.zeros(0, dtype=np.int64), np.zeros(0))


class Neighbourhood:
    """What both baselines share: ``votes`` (item index, score) from the shopper's events,
    summed into a ranked list (``__call__``) or into every voted item's score (``scores``)."""

    items: list[str]
    depth: int

    def votes(self, events: Sequence[Event]) -> tuple[I64, F64]:
        raise NotImplementedError

    def __call__(self, events: Sequence[Event]) -> list[str]:
        candidates, scores = self.votes(events)
        best = _best(candidates, scores, self.depth, len(self.items))
        return [self.items[j] for j in best]

    def scores(self, events: Sequence[Event]) -> dict[str, float]:
        """Every item with a positive summed vote, with that sum (unordered)."""
        unique, total = _totals(*self.votes(events), len(self.items))
        return {
            self.items[j]: float(t) for j, t in zip(unique.tolist(), total.tolist(), strict=True)
        }


class Covisitation(Neighbourhood):
    """Item-to-item co-visitation counts from training, the strongest ``top_n`` per item.

    For a pair of distinct items ``d`` positions apart (within ``window`` and ``max_gap_s``)
    in one shopper's collapsed item sequence, the later item gains ``kind weight / d`` as a
    neighbour of the earlier one, and the earlier item ``backward * kind weight / d`` as a
    neighbour of the later one (kind weights as in the profile: a cart says more than a view).
    Each item's kept neighbours are scaled to sum to one, so a much-visited item does not
    outvote the shopper's newest one. Stored as CSR arrays over the item indices.
    """

    def __init__(
        self,
        train: Sequence[Event],
        *,
        kind_weights: Mapping[str, float] = DEFAULT_KIND_WEIGHTS,
        params: CovisitParams | None = None,
        depth: int = 50,
    ) -> None:
        self.params = p = params or CovisitParams()
        self.depth = depth
        self.items, user, item, ts, weight = _item_runs(train, kind_weights)
        self.index = {name: j for j, name in enumerate(self.items)}
        src: list[I64] = []
        dst: list[I64] = []
        val: list[F64] = []
        for d in range(1, p.window + 1):
            a, b = item[:-d], item[d:]
            ok = (user[:-d] == user[d:]) & (ts[d:] - ts[:-d] <= p.max_gap_s) & (a != b)
            src += [a[ok], b[ok]]
            dst += [b[ok], a[ok]]
            val += [weight[d:][ok] / d, p.backward * weight[:-d][ok] / d]
        n = max(1, len(self.items))
        key = np.concatenate(src) * n + np.concatenate(dst) if src else np.zeros(0, np.int64)
        pairs, inverse = np.unique(key, return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate(val)) if src else np.zeros(0)
        keep = total > 0
        pairs, total = pairs[keep], total[keep]
        row, col = pairs // n, pairs % n
        order = np.lexsort((col, -total, row))
        row, col, total = row[order], col[order], total[order]
        starts = np.searchsorted(row, row, side="left")
        kept = np.arange(row.size) - starts < p.top_n
        row, col, total = row[kept], col[kept], total[kept]
        self.indptr = np.concatenate(([0], np.cumsum(np.bincount(row, minlength=n)))).astype(
            np.int64
        )
        sums = np.bincount(row, weights=total, minlength=n)
        self.indices: I64 = col
        self.data: F64 = total / np.maximum(sums[row], 1e-12)

    def neighbours(self, item: str) -> list[tuple[str, float]]:
        """An item's kept neighbours with their (normalised) weights, strongest first."""
        j = self.index.get(item)
        if j is None:
            return []
        lo, hi = self.indptr[j], self.indptr[j + 1]
        return [
            (self.items[c], float(w))
            for c, w in zip(self.indices[lo:hi], self.data[lo:hi], strict=True)
        ]

    def votes(self, events: Sequence[Event]) -> tuple[I64, F64]:
        recent = _latest_items(events, self.params.recent_items)
        parts: list[I64] = []
        scores: list[F64] = []
        for position, item in enumerate(recent):
            j = self.index.get(item)
            if j is None:
                continue
            lo, hi = self.indptr[j], self.indptr[j + 1]
            parts.append(self.indices[lo:hi])
            scores.append(self.data[lo:hi] / (position + 1.0))
        if not parts:
            return EMPTY_VOTES
        return np.concatenate(parts), np.concatenate(scores)


class SessionKnn(Neighbourhood):
    """V-SkNN over the training sessions (a shopper's item events split at ``gap_s`` pauses).

    The query is the shopper's latest session so far (the ongoing one, or the one they left
    off when they come back after a pause: the best evidence the history holds) as distinct
    items with linearly decaying weights, 1 for the newest and 1/L for the oldest of L. The
    ``sample`` most recent training sessions sharing an item with it are the candidates; their
    cosine similarity to the query (binary session vectors) picks the ``k`` nearest, and every
    item scores the summed similarity of the neighbours that contain it. Sessions of one
    distinct item are left out: they could only vote for the item they share.
    """

    def __init__(
        self,
        train: Sequence[Event],
        *,
        params: SessionKnnParams | None = None,
        depth: int = 50,
    ) -> None:
        self.params = p = params or SessionKnnParams()
        self.depth = depth
        self.items, user, item, ts, _ = _item_runs(train, {})
        self.index = {name: j for j, name in enumerate(self.items)}
        new = np.ones(item.size, dtype=bool)
        new[1:] = (user[1:] != user[:-1]) | (ts[1:] - ts[:-1] > p.gap_s)
        session = np.cumsum(new) - 1
        n_sessions = int(session[-1]) + 1 if session.size else 0
        ends = np.full(n_sessions, -np.inf)
        np.maximum.at(ends, session, ts)
        # renumber sessions by their end time: a higher id is a more recent session
        rank = np.empty(n_sessions, dtype=np.int64)
        rank[np.argsort(ends, kind="stable")] = np.arange(n_sessions)
        n = max(1, len(self.items))
        pairs = np.unique(rank[session] * n + item)
        sid, iid = pairs // n, pairs % n
        sizes = np.bincount(sid, minlength=n_sessions)
        keep = sizes[sid] >= 2
        sid, iid = sid[keep], iid[keep]
        self.sizes: F64 = sizes.astype(np.float64)
        self.session_ptr = np.concatenate(([0], np.cumsum(np.bincount(sid, minlength=n_sessions))))
        self.session_items: I64 = iid
        by_item = np.lexsort((-sid, iid))  # each item's sessions, most recent first
        self.item_ptr = np.concatenate(([0], np.cumsum(np.bincount(iid, minlength=n))))
        self.item_sessions: I64 = sid[by_item]
        # scratch buffers, all zero between calls (a call is not thread-safe): a dense mark per
        # session and a query weight per item make the union and the overlap linear in the
        # candidates instead of sorting them
        self._marked = np.zeros(n_sessions, dtype=bool)
        self._query = np.zeros(n)

    def _rows(self, sessions: I64) -> tuple[I64, I64]:
        """(position in ``sessions``, item) of every item of the given sessions."""
        lo, hi = self.session_ptr[sessions], self.session_ptr[sessions + 1]
        lengths = hi - lo
        owner = np.repeat(np.arange(sessions.size), lengths)
        shift = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
        return owner, self.session_items[np.arange(shift.size) + shift]

    def _candidates(self, query: I64) -> I64:
        """The ``sample`` most recent sessions holding any query item, oldest first."""
        sample = self.params.sample
        ptr = self.item_ptr
        shared = [self.item_sessions[ptr[j] : min(ptr[j] + sample, ptr[j + 1])] for j in query]
        if len(shared) == 1:
            only: I64 = shared[0][::-1]
            return only
        every = np.concatenate(shared)
        self._marked[every] = True
        marked: I64 = np.flatnonzero(self._marked)[-sample:]
        self._marked[every] = False
        return marked

    def votes(self, events: Sequence[Event]) -> tuple[I64, F64]:
        p = self.params
        latest = _latest_items(events, p.query_items, gap_s=p.gap_s)
        known = [(self.index[i], pos) for pos, i in enumerate(latest) if i in self.index]
        if not known:
            return EMPTY_VOTES
        length = float(len(latest))
        query = np.array([j for j, _ in known], dtype=np.int64)
        weights = np.array([(length - pos) / length for _, pos in known])
        candidates = self._candidates(query)
        if candidates.size == 0:
            return EMPTY_VOTES
        owner, members = self._rows(candidates)
        self._query[query] = weights
        overlap = np.bincount(owner, weights=self._query[members], minlength=candidates.size)
        self._query[query] = 0.0
        norm = np.sqrt((weights**2).sum() * self.sizes[candidates])
        similarity = overlap / norm
        nearest = np.argsort(-similarity, kind="stable")[: p.k]  # ties: the older session
        nearest = nearest[similarity[nearest] > 0]
        owner, members = self._rows(candidates[nearest])
        return members, similarity[nearest][owner]


def neighbour_methods(
    train: Sequence[Event], *, kind_weights: Mapping[str, float], depth: int
) -> dict[str, Covisitation | SessionKnn]:
    """``covisit`` and ``session_knn`` fitted on the training events, ready for
    ``evaluate(extra_methods=...)``; ``kind_weights`` are the profile's."""
    return {
        "covisit": Covisitation(train, kind_weights=kind_weights, depth=depth),
        "session_knn": SessionKnn(train, depth=depth),
    }
