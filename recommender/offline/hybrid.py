"""Fitting the ``hybrid`` ranker, and the ``hybrid`` method of ``zmot evaluate``.

The ranking itself is :mod:`recommender.core.hybrid`: candidates and signals from the live
profile, the request time and :class:`~recommender.core.hybrid.HybridTables` only. Here the
tables are built from events (:func:`build_tables`: co-visitation from
:class:`~recommender.offline.neighbours.Covisitation`, popularity, trend, item categories) and
the ranker's weights are fitted; :class:`Hybrid` then ranks evaluation moments with the core
function on the profile replayed by the worker's own :class:`~recommender.core.replay.Profiler`,
so what evaluation measures is what the API would compute from the same profile.

**Training the ranker without leaking.** The ranker learns from moments cut from the END of
the training period only: ``folds`` stretches of ``validation_share`` of its time each (3 x
20%: the last 60%). Each stretch's moments read tables and a LightFM model (``fit_model``)
rebuilt from the training events before the stretch starts, exactly as the test moments read
tables built from the whole training period; each shopper's profile is replayed up to the
moment, as at test time. The test split is never read. Three stretches instead of one give a
small shop's ranker three times the moments (on the shared Taobao sample 1,172 moments whose
candidates held the target instead of 511), at the price of two more LightFM fits. At each training
moment the target among the candidates is the positive and the other candidates are the
negatives; moments whose target is not among the candidates teach nothing and are skipped
(:attr:`Hybrid.candidate_recall` says how often the candidates held the target).

**Propensity.** The ranker's weights only say how candidates compare. The offset kept with
the tables (:attr:`HybridTables.offset`) is fitted afterwards, with the weights fixed, so that
the mean predicted probability over the candidates of every moment (also those whose next
target was no candidate) is the observed share of candidates among the shopper's next
``horizon`` target items (``TrainConfig.horizon``, 3): the served propensity is then the
probability that the shopper wants the item soon, the same quantity the plain model's
calibration estimates, so one relevance floor means the same under both.
:attr:`Hybrid.calibration` records the check.

**Request time.** A :data:`~recommender.offline.evaluation.Recommender` is given the history,
not the time of the request, so an evaluation moment's time is the profile's last event time
(``Profile.last_ts``), in fitting and in evaluation alike; the API will pass its own.

**Why a conditional logit.** The default ranker (``HybridParams.ranker = "softmax"``,
:func:`~recommender.offline.propensity.fit_softmax`, an L2 Newton fit in numpy) treats each
training moment's candidates as one choice: only how they compare counts, which is what a
ranking needs. It is linear in the signals, so serving is a dot product per candidate and its
weights (on standardised signals) can be read. ``benchmarks/ranker_compare.py`` compares it
with a pointwise logistic fit on the same signals and with LightGBM lambdarank trees (README,
"Choosing the ranker").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from recommender.core.arbitration.types import DEFAULT_PURCHASE_EXCLUSION_DAYS
from recommender.core.catalog import Catalog
from recommender.core.errors import ZmotError
from recommender.core.events import Event
from recommender.core.hybrid import FEATURES, HybridParams, HybridTables, moment, rank, sigmoid
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.offline.blas import one_blas_thread
from recommender.offline.neighbours import Covisitation
from recommender.offline.propensity import fit_logistic, fit_softmax
from recommender.offline.training import TARGET_TYPES, Target, TrainConfig, train

F64 = npt.NDArray[np.float64]

__all__ = ["FEATURES", "Hybrid", "HybridParams", "build_tables", "fit_ranker", "train_served"]


@dataclass(frozen=True)
class Stretch:
    """A stretch of the training time whose moments train the ranker: from ``start`` (incl.)
    to ``stop`` (excl.), read with the tables and LightFM model fitted on the events before
    ``start``."""

    start: float
    stop: float
    tables: HybridTables
    model: Model | None


def build_tables(
    events: Sequence[Event],
    catalog: Catalog,
    profiler: Profiler,
    wanted: frozenset[str],
    params: HybridParams,
) -> HybridTables:
    """The item tables one stretch of events teaches (the ranker's weights left at 0):
    co-visitation (the ``covisit`` baseline's, with the profile's kind weights), counts of
    target events and the same decayed to the stretch's end, the catalog's categories."""
    covisit = Covisitation(events, kind_weights=profiler.features.kind_weights)
    items, index = covisit.items, covisit.index
    targets = [e for e in events if e.type in wanted and e.item_id in index]
    end = max((e.ts or 0.0 for e in events), default=0.0)
    counts = np.zeros(len(items))
    trend = np.zeros(len(items))
    for e in targets:
        j = index[e.item_id or ""]
        counts[j] += 1.0
        trend[j] += 2.0 ** (((e.ts or 0.0) - end) / params.trend_half_life_s)
    categories: dict[str, int] = {}
    item_category = np.full(len(items), -1, dtype=np.int64)
    for j, item in enumerate(items):
        entry = catalog.get(item)
        if entry and entry.category:
            item_category[j] = categories.setdefault(entry.category, len(categories))
    return HybridTables(
        items=list(items),
        neighbour_ptr=covisit.indptr.astype(np.int64),
        neighbour_idx=covisit.indices.astype(np.int64),
        neighbour_w=covisit.data.astype(np.float32),
        popularity=np.log1p(counts).astype(np.float32),
        trend=np.log1p(trend).astype(np.float32),
        categories=list(categories),
        item_category=item_category,
        params=params,
        half_life_s=profiler.params.half_life_s,
    )


class Hybrid:
    """The ``hybrid`` method: a :data:`~recommender.offline.evaluation.Recommender` (see the
    module doc). ``fit_model`` trains a LightFM model on a stretch of events (the one for the
    ranker's own training moments); ``model`` is the one fitted on all of ``train``.
    :attr:`tables` are what a model artifact carries (``Model.hybrid``)."""

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
        horizon: int = 3,
        params: HybridParams | None = None,
        progress: bool = False,
    ) -> None:
        self.params = p = params or HybridParams()
        self.progress = progress
        self.horizon = horizon
        self.profiler = profiler
        self.model = model
        self.depth = depth
        self.wanted = TARGET_TYPES[target]
        timed = sorted(
            (e for e in train if e.ts is not None), key=lambda e: (e.user_id, e.ts or 0.0)
        )
        times = [e.ts or 0.0 for e in timed]
        start, end = min(times, default=0.0), max(times, default=0.0)
        stretches: list[Stretch] = []
        for k in range(1, max(1, p.folds) + 1):
            cut = end - k * p.validation_share * (end - start)
            before = [e for e in train if e.ts is not None and e.ts < cut]
            stop = math.inf if k == 1 else stretches[-1].start
            tables = build_tables(before, catalog, profiler, self.wanted, p)
            stretches.append(Stretch(cut, stop, tables, _try_fit(fit_model, before)))
        self.n_moments = 0
        self.candidate_recall = 0.0
        self.calibration: dict[str, float] = {}
        self.purchase_rule: dict[str, Any] = {"keep": True, "why": "too few moments"}
        weights, spread, offset = self._fit(timed, stretches)
        self.tables = build_tables(train, catalog, profiler, self.wanted, p)
        self.tables.weights, self.tables.spread, self.tables.offset = weights, spread, offset
        self.tables.purchase_rule = bool(self.purchase_rule["keep"])
        self.tables.info = {
            "moments": self.n_moments,
            "candidate_recall": self.candidate_recall,
            "calibration": self.calibration,
            "purchase_rule": self.purchase_rule,
        }
        self.weights = self.tables.learned()
        self._profiles: dict[str, tuple[int, Event | None, Profile]] = {}

    def _fit(
        self, timed: Sequence[Event], stretches: Sequence[Stretch]
    ) -> tuple[F64, F64, float | None]:
        """The ranker's weights on standardised signals, the signals' spread and the offset of
        its logit on raw signals, fitted on the moments of ``stretches`` (see the module doc;
        the offset on the newest stretch's only); zeros and no offset when too few."""
        return self._learn(*self._moments(timed, stretches))

    def _moments(
        self, timed: Sequence[Event], stretches: Sequence[Stretch]
    ) -> tuple[list[F64], list[F64], list[tuple[F64, F64]]]:
        """The training moments of ``stretches``: the signals and labels (1: the target) of
        each moment whose candidates hold its target, and, for the newest stretch's moments,
        the signals and which candidates are due within the horizon (for the offset). Sets
        :attr:`n_moments` and :attr:`candidate_recall`."""
        profiles: dict[str, Profile] = {}
        budget = self.params.max_moments
        moments: dict[int, Stretch] = {}
        for stretch in stretches:
            found = [
                i
                for i, e in enumerate(timed)
                if stretch.start <= (e.ts or 0.0) < stretch.stop
                and e.type in self.wanted
                and e.item_id is not None
            ]
            if len(found) > budget:
                step = len(found) / budget
                found = [found[int(j * step)] for j in range(budget)]
            moments.update(dict.fromkeys(found, stretch))
        ahead = self._ahead(timed, list(moments))
        newest = stretches[0]
        xs: list[F64] = []
        ys: list[F64] = []
        soon: list[tuple[F64, F64]] = []  # every moment: signals, candidates due within horizon
        with one_blas_thread():  # each moment scores like one request
            walk = tqdm(timed, desc="hybrid: moments", unit="ev", disable=not self.progress)
            for i, event in enumerate(walk):
                profile = profiles.setdefault(event.user_id, Profile())
                if i in ahead:
                    at = moments[i]
                    names, x = moment(at.tables, at.model, profile, event.ts or 0.0)
                    label = np.array([name == event.item_id for name in names], dtype=np.float64)
                    if label.any():
                        xs.append(x)
                        ys.append(label)
                    if len(names) and at is newest:
                        due = ahead[i]
                        soon.append((x, np.array([n in due for n in names], dtype=np.float64)))
                self.profiler.apply(profile, event)
        self.n_moments = len(moments)
        self.candidate_recall = len(xs) / max(1, len(moments))
        return xs, ys, soon

    def _learn(
        self, xs: list[F64], ys: list[F64], soon: list[tuple[F64, F64]]
    ) -> tuple[F64, F64, float | None]:
        """:meth:`_fit`'s weights, spread and offset from :meth:`_moments`' output; also runs
        the purchase rule test on the same moments."""
        zeros, ones = np.zeros(len(FEATURES)), np.ones(len(FEATURES))
        if len(xs) < 5:
            return zeros, ones, None  # too little to learn from: candidates keep their order
        x_all, y_all = np.vstack(xs), np.concatenate(ys)
        mean, spread = x_all.mean(axis=0), x_all.std(axis=0)
        spread[spread == 0] = 1.0
        if self.params.ranker == "logistic":
            w = fit_logistic((x_all - mean) / spread, y_all, l2=self.params.l2)[:-1]
        else:
            w = fit_softmax([(x - mean) / spread for x in xs], ys, l2=self.params.l2)
        coef = w / spread
        offset = self._calibrate(soon, coef)
        self.purchase_rule = purchase_rule_test(xs, ys, coef)
        return w, spread, offset

    def _ahead(self, timed: Sequence[Event], moments: Sequence[int]) -> dict[int, set[str]]:
        """For each training moment (an index of ``timed``, which is ordered by user and time),
        the distinct items of the user's target events from it on, up to ``horizon``."""
        out: dict[int, set[str]] = {}
        for i in moments:
            user, due = timed[i].user_id, set[str]()
            for j in range(i, len(timed)):
                event = timed[j]
                if event.user_id != user or len(due) >= self.horizon:
                    break
                if event.type in self.wanted and event.item_id is not None:
                    due.add(event.item_id)
            out[i] = due
        return out

    def _calibrate(self, soon: Sequence[tuple[F64, F64]], coef: F64) -> float:
        """The offset that makes the mean predicted probability over every candidate of every
        moment (those whose next target was no candidate too) the observed share of candidates
        that the shopper's next ``horizon`` target items hold, so that the logistic output is
        the probability that the item is among them: the quantity the plain model's
        calibration estimates, so the relevance floor means the same under both. Records the
        check in :attr:`calibration`: mean predicted vs observed over all candidates (equal by
        construction) and, not forced, for the top candidate of each moment."""
        logits = np.concatenate([x @ coef for x, _ in soon])
        hits = float(sum(y.sum() for _, y in soon))
        observed = hits / max(1, len(logits))
        lo, hi = -30.0, 30.0
        for _ in range(60):  # bisection: the mean of a sigmoid grows with its shift
            mid = (lo + hi) / 2
            if float(sigmoid(logits + mid).mean()) < observed:
                lo = mid
            else:
                hi = mid
        offset = (lo + hi) / 2
        top_p = [float(sigmoid(x @ coef + offset).max()) for x, _ in soon]
        top_hit = [float(y[int(np.argmax(x @ coef))]) for x, y in soon]
        self.calibration = {
            "moments": len(soon),
            "candidates": len(logits),
            "horizon": self.horizon,
            "mean_predicted": round(float(sigmoid(logits + offset).mean()), 5),
            "observed": round(observed, 5),
            "top1_predicted": round(float(np.mean(top_p)), 4),
            "top1_observed": round(float(np.mean(top_hit)), 4),
        }
        return offset

    def describe_purchase_rule(self) -> str:
        """One line on the purchase rule test (for the training log)."""
        r = self.purchase_rule
        if "wins" not in r:
            return f"purchase rule kept ({r['why']})"
        verdict = "kept" if r["keep"] else "dropped (bought items stay candidates)"
        return (
            f"purchase rule {verdict}: on {r['moments']} end-of-training moments, leaving items "
            f"bought in the last {r['days']:g} days in found the next item in the top {r['k']} "
            f"{r['wins']} times when excluding them did not, and missed it {r['losses']} times "
            f"when excluding them found it (one-sided sign test p = {r['p']:.3g}; dropped "
            f"below {r['alpha']})"
        )

    def describe(self) -> str:
        """One line on what the ranker learned (for the evaluation log)."""
        learned = ", ".join(f"{n} {w:+.2f}" for n, w in self.weights.items()) or "nothing"
        line = (
            f"hybrid: {self.n_moments} training moments, the candidates held the target in "
            f"{self.candidate_recall:.1%}; weights on standardised signals: {learned}"
        )
        c = self.calibration
        if c:
            line += (
                f"; propensity check on {c['moments']} end-of-training moments: mean predicted "
                f"{c['mean_predicted']:.4f} vs observed {c['observed']:.4f} over "
                f"{c['candidates']} candidates (equal by construction), top candidate "
                f"{c['top1_predicted']:.3f} predicted vs {c['top1_observed']:.3f} observed"
            )
        return line

    def profile(self, events: Sequence[Event]) -> Profile:
        """The profile of ``events`` replayed with the worker's profiler: evaluation calls with
        one growing history per user, so only the events since the last call are applied."""
        user = events[0].user_id
        n, last, profile = self._profiles.get(user, (0, None, Profile()))
        if n > len(events) or (n and last is not events[n - 1]):
            n, profile = 0, Profile()  # another history under the same id: start over
        for event in events[n:]:
            self.profiler.apply(profile, event)
        self._profiles[user] = (len(events), events[-1], profile)
        return profile

    def __call__(self, events: Sequence[Event]) -> list[str]:
        if not events:
            return []
        profile = self.profile(events)
        return rank(self.tables, self.model, profile, profile.last_ts or 0.0, self.depth)


def purchase_rule_test(
    xs: Sequence[F64],
    ys: Sequence[F64],
    coef: F64,
    *,
    days: float = DEFAULT_PURCHASE_EXCLUSION_DAYS,
    k: int = 10,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Does keeping items bought in the last ``days`` out of the offers cost hits here?

    On each training moment (signals ``xs``, the target's mark ``ys``; the ranker's raw
    weights ``coef``) the top ``k`` is taken twice: as ranked, and with the bought items
    removed. A *win* is a moment whose target only the list with bought items finds (the
    shopper came back to what they bought), a *loss* one only the list without them finds
    (their slots went to the item that came next). The rule is dropped only when wins
    outnumber losses beyond chance: a one-sided sign test over the moments where the lists
    disagree, ``p < alpha``. On data where shoppers never return to a purchase (a TV), there
    are no wins and the rule stays; where they do (consumables, order pages), it goes, and the
    ``bought`` and ``hours_since_bought`` signals rank those items like any other signal.
    """
    bought, since = FEATURES.index("bought"), FEATURES.index("hours_since_bought")
    limit = math.log1p(days * 24.0)
    wins = losses = 0
    for x, y in zip(xs, ys, strict=True):
        blocked = (x[:, bought] > 0) & (x[:, since] < limit)
        if not blocked.any():
            continue
        scores = x @ coef
        found = bool(y[np.argsort(-scores, kind="stable")[:k]].any())
        kept = np.flatnonzero(~blocked)
        found_without = bool(y[kept[np.argsort(-scores[kept], kind="stable")[:k]]].any())
        wins += found and not found_without
        losses += found_without and not found
    n = wins + losses
    p = sum(math.comb(n, i) for i in range(wins, n + 1)) / 2**n if n else 1.0
    return {
        "keep": not (wins > losses and p < alpha),
        "moments": len(xs),
        "wins": wins,
        "losses": losses,
        "p": p,
        "alpha": alpha,
        "days": days,
        "k": k,
    }


def train_served(
    events: Sequence[Event],
    catalog: Catalog,
    profiler: Profiler,
    config: TrainConfig,
    *,
    hybrid: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Model:
    """The model ``zmot train`` and the demo write: LightFM on ``events`` and, with ``hybrid``,
    the hybrid ranker's tables fitted on the same events (:func:`fit_ranker`), which the API
    then serves. ``log`` gets the progress lines."""
    model = train(events, catalog, profiler, config, progress=progress)
    if hybrid:
        ranker = fit_ranker(events, catalog, profiler, model, config, log=log, progress=progress)
        model.hybrid = ranker.tables
    return model


def fit_ranker(
    events: Sequence[Event],
    catalog: Catalog,
    profiler: Profiler,
    model: Model,
    config: TrainConfig,
    *,
    depth: int = 50,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Hybrid:
    """The hybrid ranker of ``model`` fitted on ``events`` with the training config's target
    and horizon (a second LightFM fit on the part before the ranker's moments); ``log`` gets
    what it is doing and, at the end, what it learned."""
    say = log or (lambda _line: None)
    started = time.perf_counter()
    p = HybridParams()  # the ranker's own, so that the log line says what it does
    share = p.validation_share * 100
    befores = ", ".join(f"{100 - k * share:.0f}%" for k in range(1, p.folds + 1))
    say(
        f"hybrid: fitting the ranker on the moments of the last {p.folds * share:.0f}% of the "
        f"history in {p.folds} stretches of {share:.0f}% (LightFM fitted again on what "
        f"precedes each: the first {befores})"
    )
    ranker = Hybrid(
        events,
        catalog,
        profiler,
        model,
        fit_model=lambda part: train(
            part, catalog, profiler, config, progress=progress, desc="hybrid: LightFM on a part"
        ),
        target=config.target,
        depth=depth,
        horizon=config.horizon,
        params=p,
        progress=progress,
    )
    say(f"{ranker.describe()} ({time.perf_counter() - started:.1f} s)")
    say(f"hybrid: {ranker.describe_purchase_rule()}")
    return ranker


def _try_fit(
    fit_model: Callable[[Sequence[Event]], Model | None], events: Sequence[Event]
) -> Model | None:
    """The model of the ranker's feature period, or None when it has too little to fit on
    (the model signals are then 0 while the ranker learns, and count for nothing)."""
    try:
        return fit_model(events)
    except ZmotError:
        return None
