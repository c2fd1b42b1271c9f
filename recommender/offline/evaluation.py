"""Offline replay evaluation: would the engine have offered what each shopper did next?

The walk is the production path replayed: before each target event of a test user, the same
scorer the API decides with (:func:`recommender.core.hybrid.serving_scorer`: the hybrid ranker
when the model carries its tables, else :class:`recommender.core.scoring.ItemScorer`) ranks
every item for the user's live profile; then the event is applied with the worker's own
:class:`recommender.core.replay.Profiler` and the walk moves on. Baselines are ranked at the
same moments from the same history:

=======================  ==========================================================
``live``                 the model on the live profile (what zmot serves)
``frozen``               the same model on the profile frozen at the end of training
``popular``              most popular items in training
``popular_in_category``  most popular items of the user's recent categories, then popular
``recent``               the user's own distinct items so far (train and test), newest first
=======================  ==========================================================

``zmot evaluate`` also ranks ``covisit`` and ``session_knn``, item-neighbourhood baselines
learned from the training events (:mod:`recommender.offline.neighbours`), and the
experimental ``hybrid`` (candidates re-ranked by a learned model,
:mod:`recommender.offline.hybrid`) as extra methods.

With a purchase-exclusion window, ``live_without_purchase_rule`` is also ranked: the live
model with recently bought items allowed back, which shows what that business rule costs on
data where shoppers return to what they bought.

Each prediction keeps the 0-based rank of the target in every method's list (or -1 when it is
not among the top ``max(ks)``), so metrics, confidence intervals and per-segment views are all
computed afterwards from one array. It also records whether the target is *new* to the
user (no item event of the user on it before the moment): :meth:`EvalResult.only_new` is the
evaluation restricted to those, where ``recent`` cannot hit by construction.

Those new targets are also scored a second way, :meth:`EvalResult.only_discover`: every
method's list with the items the user already touched left out (what a "new for you" slot
shows, e.g. a placement with ``exclude_seen``). ``new`` asks how many of one list's slots find
a new item; ``discover`` asks how well a method orders what the user has not seen, every
method filtered alike. The lists are ranked deep enough for that: ``depth`` plus the user's
distinct items so far (built-in methods; extra methods give what they return).
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from recommender.core.arbitration.types import DAY, DEFAULT_PURCHASE_EXCLUSION_DAYS
from recommender.core.catalog import Catalog
from recommender.core.errors import ConfigError
from recommender.core.events import ITEM_EVENTS, Event
from recommender.core.hybrid import serving_scorer
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.offline.blas import one_blas_thread
from recommender.offline.training import TARGET_TYPES, Target

METHODS = ("live", "frozen", "popular", "popular_in_category", "recent")

UNFILTERED = "live_without_purchase_rule"
"""The live model with bought items allowed back in: what the purchase rule costs."""

ItemsSlice = Literal["any", "new", "discover"]
"""Which targets count: every one, or only items new to the user at that moment (``new``:
in the methods' lists as they are; ``discover``: in the lists without the user's own items)."""

SLICES: tuple[ItemsSlice, ...] = ("any", "new", "discover")

Recommender = Callable[[Sequence[Event]], Sequence[str]]
"""A ranking method under test: the user's events so far -> item ids, best first."""


def user_sample(
    test: Sequence[Event], wanted: frozenset[str], max_predictions: int | None
) -> set[str] | None:
    """The test users to evaluate when their target events (the predictions) number more
    than ``max_predictions``: users in a stable pseudo-random order (a hash of the id), each
    taken with all its test events while the total stays within the cap. None: every user.

    The walk ranks every item of the catalog for every method at every prediction, so its
    time is predictions x catalog; on a large shop a sample of users gives the same figures
    within their intervals in bounded time. A user whose predictions would overflow the cap
    is passed over (a few very long histories cannot take it all)."""
    if max_predictions is None or max_predictions <= 0:
        return None
    per_user: Counter[str] = Counter(
        e.user_id for e in test if e.type in wanted and e.item_id is not None
    )
    if sum(per_user.values()) <= max_predictions:
        return None
    chosen: set[str] = set()
    total = 0
    for user in sorted(per_user, key=lambda u: (hashlib.md5(u.encode()).hexdigest(), u)):
        if total + per_user[user] <= max_predictions:
            chosen.add(user)
            total += per_user[user]
            if total == max_predictions:
                break
    return chosen


def split_events(
    events: Sequence[Event], *, split_time: float | None = None, split_ratio: float | None = None
) -> tuple[list[Event], list[Event]]:
    """Split by event time: before ``split_time`` (or the time that leaves ``split_ratio`` of
    the events in train) is train, the rest test. File order is kept within each part."""
    if (split_time is None) == (split_ratio is None):
        raise ConfigError("give exactly one of split_time and split_ratio")
    timed = [e for e in events if e.ts is not None]
    if not timed:
        raise ConfigError("no event has a time to split on")
    if split_ratio is not None:
        if not 0.0 < split_ratio < 1.0:
            raise ConfigError("split_ratio must be between 0 and 1")
        times = sorted(e.ts for e in timed if e.ts is not None)
        split_time = times[min(len(times) - 1, int(len(times) * split_ratio))]
    assert split_time is not None
    train = [e for e in timed if e.ts is not None and e.ts < split_time]
    test = [e for e in timed if e.ts is not None and e.ts >= split_time]
    return train, test


@dataclass
class Prediction:
    """One ranking moment: who, when, what they did next, and each method's list."""

    user_id: str
    ts: float
    position: int
    target: str
    lists: dict[str, list[str]]
    new: bool = False
    """The user had no item event on the target before this moment."""
    discover: dict[str, list[str]] | None = None
    """Each method's list without the items the user already touched (what a placement with
    ``exclude_seen`` shows; every prediction carries it, so a dump can also mix the two lists,
    as ``benchmarks/new_frontier.py`` does)."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "user_id": self.user_id,
            "ts": round(self.ts * 1000),
            "position": self.position,
            "target": self.target,
            "new": self.new,
            "methods": self.lists,
        }
        if self.discover is not None:
            out["discover"] = self.discover
        return out


@dataclass
class EvalResult:
    """Ranks of every target under every method, and what is needed to slice them."""

    ks: list[int]
    methods: list[str]
    ranks: npt.NDArray[np.int32]  # (n_predictions, n_methods); -1 = not in the top `depth`
    users: npt.NDArray[np.int32]  # user index of each prediction
    seen: npt.NDArray[np.int32]  # events of the user before the prediction (train + test)
    recommended: dict[str, dict[int, set[str]]]  # method -> k -> distinct items shown
    n_items: int
    user_ids: list[str] = field(default_factory=list)
    depth: int = 0
    new: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Per prediction: the target was new to the user (see :attr:`Prediction.new`)."""
    recommended_new: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    """Like ``recommended``, over the predictions with a new target only."""
    discover_ranks: npt.NDArray[np.int32] | None = None
    """Like ``ranks``, in the lists without the user's own items (rows of new targets only;
    -1 elsewhere)."""
    recommended_discover: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    """Like ``recommended_new``, over those lists."""

    @property
    def n_predictions(self) -> int:
        return int(self.ranks.shape[0])

    def method_metrics(
        self, method: str, rows: npt.NDArray[np.intp] | None = None
    ) -> dict[str, float]:
        """HR@k, MRR@k, NDCG@k (means over predictions) and catalogue coverage."""
        col = self.ranks[:, self.methods.index(method)]
        if rows is not None:
            col = col[rows]
        out: dict[str, float] = {}
        n = max(1, col.shape[0])
        for k in self.ks:
            hit = (col >= 0) & (col < k)
            out[f"hr@{k}"] = float(hit.sum() / n)
            out[f"mrr@{k}"] = float((1.0 / (col[hit] + 1.0)).sum() / n)
            out[f"ndcg@{k}"] = float((1.0 / np.log2(col[hit] + 2.0)).sum() / n)
        if rows is None:
            for k in self.ks:
                out[f"coverage@{k}"] = len(self.recommended[method][k]) / max(1, self.n_items)
            out["coverage"] = out[f"coverage@{max(self.ks)}"]
        return out

    def only_new(self) -> EvalResult:
        """The same evaluation over the predictions whose target was new to the user; users
        without such a prediction are left out (users are renumbered, order kept)."""
        return self._new_rows(self.ranks, self.recommended_new)

    def only_discover(self) -> EvalResult:
        """:meth:`only_new` scored in each method's list without the items the user already
        touched (see the module doc)."""
        if self.discover_ranks is None:
            raise ValueError("this evaluation kept no discovery ranks")
        return self._new_rows(self.discover_ranks, self.recommended_discover)

    def _new_rows(
        self, ranks: npt.NDArray[np.int32], recommended: dict[str, dict[int, set[str]]]
    ) -> EvalResult:
        rows = np.flatnonzero(self.new)
        kept, users = np.unique(self.users[rows], return_inverse=True)
        return EvalResult(
            ks=self.ks,
            methods=self.methods,
            ranks=ranks[rows],
            users=users.astype(np.int32).reshape(-1),
            seen=self.seen[rows],
            recommended=recommended,
            n_items=self.n_items,
            user_ids=[self.user_ids[u] for u in kept.tolist()] if self.user_ids else [],
            depth=self.depth,
            new=np.ones(rows.size, dtype=bool),
            recommended_new=recommended,
        )

    def items(self, which: ItemsSlice) -> EvalResult:
        """This evaluation (``any``), its new-item part (``new``) or that part scored in the
        lists without the user's own items (``discover``)."""
        if which == "new":
            return self.only_new()
        if which == "discover":
            return self.only_discover()
        return self

    def summary(self) -> dict[str, Any]:
        """The document ``zmot evaluate --json`` prints."""
        return {
            "n_predictions": self.n_predictions,
            "n_users": len(set(self.users.tolist())),
            "ks": self.ks,
            "methods": {m: self.method_metrics(m) for m in self.methods},
        }


class Popularity:
    """Training popularity, overall and per category: items by their counts (any weights:
    plain or decayed counts), ties by item id."""

    def __init__(self, counts: Mapping[str, float], catalog: Catalog) -> None:
        self.ordered = [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        self.by_category: dict[str, list[str]] = {}
        for item in self.ordered:
            entry = catalog.get(item)
            if entry and entry.category:
                self.by_category.setdefault(entry.category, []).append(item)

    def first(self, k: int) -> list[str]:
        """The ``k`` most popular items."""
        return self.ordered[:k]

    def in_categories(self, categories: Iterable[str], k: int) -> list[str]:
        chosen: dict[str, None] = {}
        for category in categories:
            for item in self.by_category.get(category, ()):
                chosen.setdefault(item, None)
                if len(chosen) >= k:
                    return list(chosen)
        for item in self.ordered:
            if len(chosen) >= k:
                break
            chosen.setdefault(item, None)
        return list(chosen)


def _rank(items: Sequence[str], target: str) -> int:
    try:
        return items.index(target)
    except ValueError:
        return -1


def evaluate(
    model: Model,
    catalog: Catalog,
    profiler: Profiler,
    train: Sequence[Event],
    test: Sequence[Event],
    *,
    ks: Sequence[int] = (10,),
    target: Target = "any",
    recent_boost: float = 0.0,
    purchase_exclusion_s: float = DEFAULT_PURCHASE_EXCLUSION_DAYS * DAY,
    on_prediction: Callable[[Prediction], object] | None = None,
    progress: bool = False,
    depth: int = 50,
    extra_methods: Mapping[str, Recommender] | None = None,
    hybrid: bool = True,
    users: set[str] | None = None,
) -> EvalResult:
    """Walk the test events in time order, ranking before each target event (see module doc).

    Lists are ranked ``max(depth, max(ks))`` deep so that HR@k can be drawn as k grows; the
    metrics at each k only look at the first k. ``extra_methods`` are ranked beside the
    built-in ones; each gets the user's events so far (train and test, oldest first).
    ``hybrid`` is ``ZMOT_HYBRID`` (False: off): with it, a model carrying hybrid tables is
    ranked by the hybrid ranker in ``live``, ``frozen`` and ``live_without_purchase_rule``.
    ``users`` (e.g. from :func:`user_sample`): only these users' test events are walked (None:
    every user's).
    """
    if not ks or min(ks) < 1:
        raise ConfigError("k must be at least 1")
    depth = max(depth, *ks)
    wanted = TARGET_TYPES[target]
    scorer = serving_scorer(
        model, purchase_exclusion_s=purchase_exclusion_s, recent_boost=recent_boost, hybrid=hybrid
    )
    items = model.item_ids
    popularity = Popularity(
        Counter(e.item_id for e in train if e.type in wanted and e.item_id), catalog
    )

    extra = dict(extra_methods or {})
    # With a purchase rule, the live model is also ranked without it, so that a report can
    # show what the rule (not offering what was just bought) costs on repeat-heavy data.
    unfiltered = (
        serving_scorer(model, purchase_exclusion_s=0.0, recent_boost=recent_boost, hybrid=hybrid)
        if purchase_exclusion_s > 0
        else None
    )
    methods = [*METHODS, *([UNFILTERED] if unfiltered else []), *extra]
    so_far: dict[str, list[Event]] = {}
    live: dict[str, Profile] = {}
    history: dict[str, OrderedDict[str, None]] = {}
    categories: dict[str, OrderedDict[str, None]] = {}
    n_seen: Counter[str] = Counter()

    def remember(event: Event) -> None:
        n_seen[event.user_id] += 1
        if extra:
            so_far.setdefault(event.user_id, []).append(event)
        if event.type in ITEM_EVENTS and event.item_id is not None:
            seen = history.setdefault(event.user_id, OrderedDict())
            seen[event.item_id] = None
            seen.move_to_end(event.item_id, last=False)
            entry = catalog.get(event.item_id)
            if entry and entry.category:
                cats = categories.setdefault(event.user_id, OrderedDict())
                cats[entry.category] = None
                cats.move_to_end(entry.category, last=False)

    if users is not None:  # only the sample's histories are read (popularity is everyone's)
        test = [e for e in test if e.user_id in users]
    for event in train:
        if users is not None and event.user_id not in users:
            continue
        profiler.apply(live.setdefault(event.user_id, Profile()), event)
        remember(event)
    frozen = copy.deepcopy(live)

    ordered = sorted(range(len(test)), key=lambda i: (test[i].user_id, test[i].ts or 0.0, i))
    user_index: dict[str, int] = {}
    positions: Counter[str] = Counter()
    rank_rows: list[list[int]] = []
    user_col: list[int] = []
    seen_col: list[int] = []
    new_col: list[bool] = []
    recommended: dict[str, dict[int, set[str]]] = {m: {k: set() for k in ks} for m in methods}
    recommended_new: dict[str, dict[int, set[str]]] = {m: {k: set() for k in ks} for m in methods}
    recommended_discover: dict[str, dict[int, set[str]]] = {
        m: {k: set() for k in ks} for m in methods
    }
    discover_rows: list[list[int]] = []

    with one_blas_thread():  # per-request-sized products, as the API runs them
        for i in tqdm(ordered, desc="evaluating", unit="ev", disable=not progress):
            event = test[i]
            user = event.user_id
            position = positions[user]
            positions[user] += 1
            now = event.ts or 0.0
            if event.type in wanted and event.item_id is not None:
                profile = live.get(user)
                own: Mapping[str, None] = history.get(user, {})
                new = event.item_id not in own
                # deep enough that `depth` remain without the user's own items
                deep = depth + len(own)
                fallback = popularity.first(deep)
                full = {
                    "live": _names(scorer.top(profile, deep, now), items, fallback),
                    "frozen": _names(scorer.top(frozen.get(user), deep, now), items, fallback),
                    "popular": fallback,
                    "popular_in_category": popularity.in_categories(categories.get(user, {}), deep),
                    "recent": list(own)[:deep],
                }
                if unfiltered is not None:
                    full[UNFILTERED] = _names(unfiltered.top(profile, deep, now), items, fallback)
                for name, recommend in extra.items():
                    full[name] = list(recommend(so_far.get(user, [])))
                lists = {m: chosen[:depth] for m, chosen in full.items()}
                rank_rows.append([_rank(lists[m], event.item_id) for m in methods])
                user_col.append(user_index.setdefault(user, len(user_index)))
                seen_col.append(n_seen[user])
                new_col.append(new)
                fresh = {
                    m: [i for i in chosen if i not in own][:depth] for m, chosen in full.items()
                }
                if new:
                    discover_rows.append([_rank(fresh[m], event.item_id) for m in methods])
                else:
                    discover_rows.append([-1] * len(methods))
                for method, chosen in lists.items():
                    for k in ks:
                        recommended[method][k].update(chosen[:k])
                        if new:
                            recommended_new[method][k].update(chosen[:k])
                            recommended_discover[method][k].update(fresh[method][:k])
                if on_prediction is not None:
                    cut = max(ks)
                    shown = {m: chosen[:cut] for m, chosen in lists.items()}
                    found = {m: f[:cut] for m, f in fresh.items()}
                    on_prediction(Prediction(user, now, position, event.item_id, shown, new, found))
            profiler.apply(live.setdefault(user, Profile()), event)
            remember(event)

    return EvalResult(
        ks=sorted(ks),
        methods=methods,
        ranks=np.array(rank_rows, dtype=np.int32).reshape(-1, len(methods)),
        users=np.array(user_col, dtype=np.int32),
        seen=np.array(seen_col, dtype=np.int32),
        recommended=recommended,
        n_items=len(catalog) or len(items),
        user_ids=list(user_index),
        depth=depth,
        new=np.array(new_col, dtype=bool),
        recommended_new=recommended_new,
        discover_ranks=np.array(discover_rows, dtype=np.int32).reshape(-1, len(methods)),
        recommended_discover=recommended_discover,
    )


def _names(top: list[int] | None, items: Sequence[str], fallback: list[str]) -> list[str]:
    """Item ids of a scorer's top list; the popular list when the profile says nothing."""
    return fallback if top is None else [items[i] for i in top]
