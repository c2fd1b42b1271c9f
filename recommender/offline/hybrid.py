"""``hybrid``: candidates from several sources, re-ranked by a learned model (evaluation only).

At each prediction moment the shopper's history so far and tables learned from training give
a bounded set of candidates (:class:`HybridParams`): the shopper's own items (newest first),
co-visitation neighbours of their newest items, the LightFM model's top items for the live
profile (the model ``zmot evaluate`` trains, through the API's own
:class:`~recommender.core.scoring.ItemScorer`), and trending items overall and in the
shopper's strongest categories. Every candidate gets the signals of :data:`FEATURES`, and a
logistic model over them orders the list.

**Training the ranker without leaking.** The ranker learns from moments cut from the END of
the training period only: the last ``validation_share`` of its time. Everything a feature
reads there (co-visitation, session-kNN, popularity and a LightFM model fitted by
``fit_model``) is rebuilt from the training events before that cut, exactly as the test
moments read tables built from the whole training period; the shopper's own history is read
up to the moment, as at test time. The test split is never read. At each training moment the
target among the candidates is the positive and the other candidates are the negatives;
moments whose target is not among the candidates teach nothing and are skipped
(:attr:`Hybrid.candidate_recall` says how often the candidates held the target).

**Why logistic.** :func:`~recommender.offline.propensity.fit_logistic` (an L2 Newton fit in
numpy) needs no new dependency, fits a few hundred thousand rows in a second, and its weights
(on standardised signals) can be read: which signal decides. A pointwise loss is not a ranking
loss, and a linear model cannot express "repeat count matters only for recent items"; a
LightGBM lambdarank ranker on the same candidates and signals is the next thing to compare,
left for a later step.

Nothing here is served: the API, worker, arbitration and the model artifact are unchanged.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recommender.core.catalog import Catalog
from recommender.core.errors import ZmotError
from recommender.core.events import ITEM_EVENTS, Event
from recommender.core.features import item_feature
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.core.scoring import ItemScorer, top_k
from recommender.offline.evaluation import Popularity
from recommender.offline.neighbours import Covisitation, SessionKnn
from recommender.offline.propensity import fit_logistic
from recommender.offline.training import TARGET_TYPES, Target

F64 = npt.NDArray[np.float64]
HOUR = 3600.0

FEATURES = (
    "model",  # LightFM z-score over all items for the live profile (0 if unknown to it)
    "in_model",  # the model knows the item
    "covisit",  # co-visitation score from the shopper's newest items
    "session_knn",  # V-SkNN score from the shopper's latest session
    "own",  # the shopper touched the item before
    "own_weight",  # its decayed profile weight / the strongest item's
    "repeat",  # log(1 + kind-weighted count of the shopper's events on it)
    "hours_since",  # log(1 + hours since the shopper last touched it)
    "bought",  # the shopper bought it
    "hours_since_bought",  # log(1 + hours since that purchase)
    "popularity",  # log(1 + target events on it in the table period)
    "trend",  # log(1 + the same, decayed over trend_half_life_s to the period's end)
    "category",  # profile weight of its category / the strongest category's
)


@dataclass(frozen=True)
class HybridParams:
    """Candidate budget and ranker settings: common defaults, not tuned on any data set."""

    own_items: int = 70
    covisit_items: int = 50
    model_items: int = 50
    popular_items: int = 30
    """Half trending overall, half trending in the shopper's strongest categories."""
    max_candidates: int = 200
    validation_share: float = 0.2
    """The last share of the training time whose moments train the ranker."""
    trend_half_life_s: float = 24 * HOUR
    max_moments: int = 5000
    """Training moments used at most (an even sample of them beyond that)."""
    l2: float = 1.0


@dataclass
class _Shopper:
    """One shopper's history as the ranker reads it, updated event by event."""

    profile: Profile = field(default_factory=Profile)
    events: list[Event] = field(default_factory=list)
    newest: OrderedDict[str, None] = field(default_factory=OrderedDict)
    count: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    bought: dict[str, float] = field(default_factory=dict)

    def apply(self, event: Event, profiler: Profiler) -> None:
        profiler.apply(self.profile, event)
        self.events.append(event)
        item = event.item_id
        if event.type not in ITEM_EVENTS or item is None:
            return
        self.newest[item] = None
        self.newest.move_to_end(item, last=False)
        self.count[item] = self.count.get(item, 0.0) + profiler.features.kind_weights.get(
            event.type, 0.0
        )
        self.last[item] = event.ts or 0.0
        if event.type == "purchase":
            self.bought[item] = event.ts or 0.0


class _Tables:
    """What one stretch of events teaches: neighbours, popularity, the model's scorer."""

    def __init__(
        self,
        events: Sequence[Event],
        model: Model | None,
        catalog: Catalog,
        profiler: Profiler,
        wanted: frozenset[str],
        params: HybridParams,
    ) -> None:
        self.catalog = catalog
        self.covisit = Covisitation(events, kind_weights=profiler.features.kind_weights)
        self.session_knn = SessionKnn(events)
        self.model = model
        self.scorer = (
            ItemScorer(model, purchase_exclusion_s=0.0, recent_boost=0.0) if model else None
        )
        targets = [e for e in events if e.type in wanted and e.item_id is not None]
        end = max((e.ts or 0.0 for e in events), default=0.0)
        self.popularity: Counter[str] = Counter(e.item_id for e in targets if e.item_id)
        self.trend: dict[str, float] = {}
        for e in targets:
            assert e.item_id is not None
            decay = 2.0 ** (((e.ts or 0.0) - end) / params.trend_half_life_s)
            self.trend[e.item_id] = self.trend.get(e.item_id, 0.0) + decay
        self.trending = Popularity(self.trend, catalog, max(1, params.popular_items // 2))


class Hybrid:
    """The ``hybrid`` method: a :data:`~recommender.offline.evaluation.Recommender` (see the
    module doc). ``fit_model`` trains a LightFM model on a stretch of events (the one for the
    ranker's own training moments); ``model`` is the one fitted on all of ``train``."""

    def __init__(
        self,
        train: Sequence[Event],
        catalog: Catalog,
        profiler: Profiler,
        model: Model | None,
        *,
        fit_model: Callable[[Sequence[Event]], Model | None],
        target: Target = "any",
        depth: int = 50,
        params: HybridParams | None = None,
    ) -> None:
        self.params = p = params or HybridParams()
        self.profiler = profiler
        self.depth = depth
        self.wanted = TARGET_TYPES[target]
        timed = sorted(
            (e for e in train if e.ts is not None), key=lambda e: (e.user_id, e.ts or 0.0)
        )
        times = [e.ts or 0.0 for e in timed]
        start, end = min(times, default=0.0), max(times, default=0.0)
        cut = end - p.validation_share * (end - start)
        early = [e for e in train if e.ts is not None and e.ts < cut]
        self.n_moments = 0
        self.candidate_recall = 0.0
        self.weights: dict[str, float] = {}
        self._coef = np.zeros(len(FEATURES))
        self._fit(timed, early, cut, catalog, _try_fit(fit_model, early))
        self.tables = _Tables(train, model, catalog, profiler, self.wanted, p)
        self._shoppers: dict[str, tuple[int, _Shopper]] = {}

    def _fit(
        self,
        timed: Sequence[Event],
        early: Sequence[Event],
        cut: float,
        catalog: Catalog,
        model: Model | None,
    ) -> None:
        """Fit the ranker on the moments at or after ``cut`` (see the module doc)."""
        tables = _Tables(early, model, catalog, self.profiler, self.wanted, self.params)
        shoppers: dict[str, _Shopper] = {}
        moments = [
            i
            for i, e in enumerate(timed)
            if (e.ts or 0.0) >= cut and e.type in self.wanted and e.item_id is not None
        ]
        if len(moments) > self.params.max_moments:
            step = len(moments) / self.params.max_moments
            moments = [moments[int(j * step)] for j in range(self.params.max_moments)]
        chosen = set(moments)
        xs: list[F64] = []
        ys: list[F64] = []
        hits = 0
        for i, event in enumerate(timed):
            shopper = shoppers.setdefault(event.user_id, _Shopper())
            if i in chosen:
                names, x = self._moment(tables, shopper)
                label = np.array([name == event.item_id for name in names], dtype=np.float64)
                if label.any():
                    hits += 1
                    xs.append(x)
                    ys.append(label)
            shopper.apply(event, self.profiler)
        self.n_moments = len(moments)
        self.candidate_recall = hits / max(1, len(moments))
        if hits < 5:
            return  # too little to learn from: every score is 0, candidates keep their order
        x_all, y_all = np.vstack(xs), np.concatenate(ys)
        mean, spread = x_all.mean(axis=0), x_all.std(axis=0)
        spread[spread == 0] = 1.0
        w = fit_logistic((x_all - mean) / spread, y_all, l2=self.params.l2)
        self.weights = {name: float(v) for name, v in zip(FEATURES, w[:-1], strict=True)}
        self._coef = w[:-1] / spread  # the intercept and the mean shift do not change order

    def _moment(self, tables: _Tables, shopper: _Shopper) -> tuple[list[str], F64]:
        """The candidates of one moment and their signals (rows in :data:`FEATURES` order).

        Times are measured from the shopper's last event: a ``Recommender`` is given the
        history, not the time of the request, and training reads them the same way."""
        p = self.params
        now = (shopper.events[-1].ts or 0.0) if shopper.events else 0.0
        weights = shopper.profile.normalised()
        z = tables.scorer.scores(shopper.profile, now) if tables.scorer else None
        covisit = tables.covisit.scores(shopper.events)
        knn = tables.session_knn.scores(shopper.events)
        categories = sorted(
            ((w, name[4:]) for name, w in weights.items() if name.startswith("cat:")),
            reverse=True,
        )
        chosen: dict[str, None] = dict.fromkeys(list(shopper.newest)[: p.own_items])
        chosen.update(dict.fromkeys(_strongest(covisit, p.covisit_items)))
        if z is not None and tables.model is not None:
            ids = tables.model.item_ids
            chosen.update(dict.fromkeys(ids[j] for j in top_k(z, p.model_items)))
        chosen.update(dict.fromkeys(tables.trending.top))
        strong = [name for _, name in categories]
        chosen.update(
            dict.fromkeys(tables.trending.in_categories(strong, len(tables.trending.top)))
        )
        names = list(chosen)[: p.max_candidates]

        strongest_item = max((weights.get(item_feature(i), 0.0) for i in shopper.newest), default=0)
        strongest_cat = categories[0][0] if categories else 0.0
        index = tables.model.item_index if tables.model is not None else {}
        rows = np.zeros((len(names), len(FEATURES)))
        for r, name in enumerate(names):
            j = index.get(name)
            entry = tables.catalog.get(name)
            category = entry.category if entry else None
            last = shopper.last.get(name)
            bought = shopper.bought.get(name)
            rows[r] = (
                float(z[j]) if z is not None and j is not None else 0.0,
                float(j is not None),
                covisit.get(name, 0.0),
                knn.get(name, 0.0),
                float(last is not None),
                weights.get(item_feature(name), 0.0) / strongest_item if strongest_item else 0.0,
                math.log1p(shopper.count.get(name, 0.0)),
                math.log1p(max(0.0, now - last) / HOUR) if last is not None else 0.0,
                float(bought is not None),
                math.log1p(max(0.0, now - bought) / HOUR) if bought is not None else 0.0,
                math.log1p(tables.popularity.get(name, 0)),
                math.log1p(tables.trend.get(name, 0.0)),
                weights.get(f"cat:{category}", 0.0) / strongest_cat
                if category and strongest_cat
                else 0.0,
            )
        return names, rows

    def describe(self) -> str:
        """One line on what the ranker learned (for the evaluation log)."""
        learned = ", ".join(f"{n} {w:+.2f}" for n, w in self.weights.items()) or "nothing"
        return (
            f"hybrid: {self.n_moments} training moments, the candidates held the target in "
            f"{self.candidate_recall:.1%}; weights on standardised signals: {learned}"
        )

    def _shopper(self, events: Sequence[Event]) -> _Shopper:
        """The shopper of ``events`` brought up to date: evaluation calls with one growing
        history per user, so only the events since the last call are applied."""
        user = events[0].user_id
        n, shopper = self._shoppers.get(user, (0, _Shopper()))
        if n > len(events) or (n and shopper.events[-1] is not events[n - 1]):
            n, shopper = 0, _Shopper()  # another history under the same id: start over
        for event in events[n:]:
            shopper.apply(event, self.profiler)
        self._shoppers[user] = (len(events), shopper)
        return shopper

    def __call__(self, events: Sequence[Event]) -> list[str]:
        if not events:
            return []
        names, rows = self._moment(self.tables, self._shopper(events))
        if not names:
            return []
        order = np.argsort(-(rows @ self._coef), kind="stable")[: self.depth]
        return [names[j] for j in order.tolist()]


def _strongest(scores: Mapping[str, float], n: int) -> list[str]:
    return sorted(scores, key=lambda i: (-scores[i], i))[:n]


def _try_fit(
    fit_model: Callable[[Sequence[Event]], Model | None], events: Sequence[Event]
) -> Model | None:
    """The model of the ranker's feature period, or None when it has too little to fit on
    (the model signals are then 0 while the ranker learns, and count for nothing)."""
    try:
        return fit_model(events)
    except ZmotError:
        return None
