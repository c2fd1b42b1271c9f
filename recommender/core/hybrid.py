"""``hybrid`` ranking from a live profile: candidates, their signals and a learned order.

Everything a candidate's signals read is (the live :class:`~recommender.core.profile.Profile`,
the request time, static tables of the model artifact): the profile's ``item:`` weights
(decayed, kind-weighted counts), its purchases, its ``cat:`` weights, the LightFM score, and
:class:`HybridTables` (co-visitation neighbours per item, popularity and trend snapshots, item
categories, the ranker's weights). No raw event history is read, so the API can compute
exactly what evaluation computed at the same moment from the same profile. Fitting the tables
and the ranker is :mod:`recommender.offline.hybrid`'s business.

Candidates, in this order and without repeats, at most ``max_candidates``:

* the profile's own items, strongest first (``own_items``), then the items it remembers
  touching (``profile.touched``) that are not among them, newest first;
* co-visitation neighbours of the profile's items, each item voting with its share of the
  profile's item weight (``covisit_items``), then those of its newest touched items, the
  i-th newest voting with 1/(i+1) (``recent_covisit_items``);
* the model's top items for the profile (``model_items``);
* trending items overall, then trending items of the profile's strongest categories
  (``popular_items`` split in two).

Artifact (beside ``model.npz``): ``hybrid.npz`` holds every array of :class:`HybridTables`
(items and categories as unicode arrays, no pickle), ``meta.json``'s ``hybrid`` entry the
parameters, signal names and learned weights.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from recommender.core.errors import ModelError
from recommender.core.features import CATEGORY_PREFIX, ITEM_PREFIX, item_weights
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.scoring import ItemScorer, Priced

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
HOUR = 3600.0
log = logging.getLogger(__name__)
FILE = "hybrid.npz"
NATIVE_ENV = "ZMOT_NATIVE"
"""``0``: serve the candidate pass in numpy even when ``zmot_native`` is installed."""

BASE = (
    "model",  # LightFM z-score over all items for the profile (0 if unknown to it)
    "in_model",  # the model knows the item
    "covisit",  # co-visitation votes of the profile's items, by their share of item weight
    "own",  # the profile holds the item
    "own_share",  # its profile weight / the strongest item's
    "own_rank",  # 1 / (1 + its rank among the profile's items by weight)
    "weight",  # log(1 + its decayed weight at the request time): a decayed kind-weighted count
    "bought",  # the profile remembers a purchase of it
    "hours_since_bought",  # log(1 + hours since that purchase)
    "popularity",  # log(1 + target events on it in the table period)
    "trend",  # log(1 + the same, decayed over trend_half_life_s to the period's end)
    "category",  # profile weight of its category / the strongest category's
    "touched",  # the profile remembers when the shopper last touched it (profile.touched)
    "touch_rank",  # 1 / (1 + its rank among those items, newest touch first)
    "hours_since_touch",  # log(1 + hours since that touch at the request time)
    "covisit_recent",  # co-visitation votes of the newest touched items, the i-th by 1/(i+1)
    "touch_category",  # share of the remembered touches in the item's category
)
"""The signals :func:`candidate_rows` reads from the profile, the tables and the model."""

SHAPES = (
    "log_covisit",  # log(1 + 100 covisit): votes as a factor (choice model), 0 without votes
    "log_covisit_recent",  # log(1 + 100 covisit_recent)
    "log_own_share",  # log(1 + 100 own_share)
    "touch_1",  # the newest remembered touch
    "touch_2",  # the second newest
    "touch_3",  # the third newest
    "touch_4_5",  # the 4th or 5th newest
    "touch_6_10",  # the 6th to 10th newest
    "touch_11_up",  # an older remembered touch
    "hours_since_touch_sq",  # hours_since_touch squared (0 when not remembered)
    "own_model",  # own x model: how the model's score counts for the shopper's own items
    "category_popularity",  # category x popularity: popular in the shopper's categories
)
"""Signals derived from :data:`BASE` (:func:`shapes`): a linear ranker over them can follow
a curve (the chance of a return falls off steeply with recency rank, then flattens) and
votes as factors, instead of one straight line per signal; and a product where a signal only
counts together with another (popularity counts in the shopper's own categories)."""

FEATURES = BASE + SHAPES


def load_native() -> Any:
    """The ``zmot_native`` extension (Rust, ``recommender/native``) that computes the candidate
    pass in one call, or None: disabled (``ZMOT_NATIVE=0``), not installed (one warning: the
    numpy pass serves, slower, with the same answers), or built for other signals."""
    if os.environ.get(NATIVE_ENV, "1").strip() == "0":
        return None
    try:
        import zmot_native
    except ImportError as exc:
        log.warning(
            "zmot_native is not installed (%s): the hybrid ranker's candidate pass runs in "
            "numpy, slower, same answers (make install builds it)",
            exc,
        )
        return None
    if tuple(zmot_native.FEATURES) != FEATURES:
        log.warning(
            "zmot_native fills other signals than %s: the candidate pass runs in numpy", FEATURES
        )
        return None
    return zmot_native


NATIVE: Any = load_native()
"""``zmot_native`` when it serves the candidate pass (:func:`load_native`), else None."""


@dataclass(frozen=True)
class HybridParams:
    """Candidate budget and ranker settings: common defaults, not tuned on any data set."""

    own_items: int = 70
    covisit_items: int = 50
    recent_voters: int = 10
    """The newest touched items that cast ``covisit_recent`` votes (the ``covisit``
    baseline's ``recent_items``)."""
    recent_covisit_items: int = 30
    model_items: int = 50
    popular_items: int = 30
    """Half trending overall, half trending in the profile's strongest categories."""
    max_candidates: int = 200
    validation_share: float = 0.2
    """The share of the training time in each stretch whose moments train the ranker
    (offline only)."""
    folds: int = 3
    """Stretches of ``validation_share`` each, the newest last: the ranker learns from the
    moments of the last ``folds x validation_share`` of the training time, each stretch's read
    with tables and a LightFM model fitted on what came before it (offline only). More moments
    for a ranker of 29 weights on a small shop; each stretch costs one LightFM fit."""
    trend_half_life_s: float = 24 * HOUR
    max_moments: int = 5000
    """Training moments used at most per stretch (an even sample of them beyond that)."""
    l2: float = 1.0
    ranker: str = "softmax"
    """``softmax``: a conditional logit fitted on each moment's candidates as one choice
    (listwise); ``logistic``: each candidate on its own (pointwise). Both are linear in the
    signals, so serving is the same either way (offline only)."""


@dataclass
class HybridTables:
    """The static part of the ranker: item tables learned from training events and weights.

    ``neighbour_*`` is a CSR matrix over ``items``: row ``j`` holds item ``j``'s kept
    co-visitation neighbours and their normalised weights. ``popularity`` and ``trend`` are
    already ``log1p``'d; ``item_category`` indexes ``categories`` (-1: none). ``coef`` are the
    ranker's weights on the raw signals (``weights / spread``: the intercept and the mean
    shift do not change an order), ``weights`` the same on standardised signals (readable).
    """

    items: list[str]
    neighbour_ptr: I64
    neighbour_idx: I64
    neighbour_w: F32
    popularity: F32
    trend: F32
    categories: list[str]
    item_category: I64
    params: HybridParams = field(default_factory=HybridParams)
    half_life_s: float = 72 * HOUR
    """The profiles' half-life the ranker was fitted with (the ``weight`` signal decays by it)."""
    weights: F64 = field(default_factory=lambda: np.zeros(len(FEATURES)))
    spread: F64 = field(default_factory=lambda: np.ones(len(FEATURES)))
    info: dict[str, Any] = field(default_factory=dict)
    """What fitting measured (training moments, candidate recall): for logs, not ranking."""
    offset: float | None = None
    """The ranker's logit is ``signals @ coef + offset``, and its logistic output the
    probability that the candidate is among the shopper's next few target items (see
    :meth:`probability`). None: tables fitted before the offset was kept, which rank but give
    no propensity, so serving does not use them."""
    purchase_rule: bool = True
    """Keep bought items out of the offers (``ZMOT_PURCHASE_EXCLUSION_DAYS`` unset): False
    when fitting found that shoppers come back to what they bought, so that excluding those
    items cost hits on the end-of-training moments
    (:func:`recommender.offline.hybrid.purchase_rule_test`)."""

    def __post_init__(self) -> None:
        n = len(self.items)
        if self.neighbour_ptr.shape != (n + 1,) or self.neighbour_idx.shape != (
            self.neighbour_w.shape
        ):
            raise ModelError("hybrid: co-visitation arrays do not match the items")
        if self.popularity.shape != (n,) or self.trend.shape != (n,):
            raise ModelError("hybrid: popularity arrays do not match the items")
        if self.item_category.shape != (n,):
            raise ModelError("hybrid: item categories do not match the items")
        if self.weights.shape != (len(FEATURES),) or self.spread.shape != (len(FEATURES),):
            raise ModelError(f"hybrid: weights do not match the {len(FEATURES)} signals")
        self.index = {item: j for j, item in enumerate(self.items)}
        self._coef: tuple[bytes, F64] | None = None
        self.bound: tuple[Model | None, Universe] | None = None
        """These tables joined with the model last asked for (:func:`universe`)."""
        self.category_index = {c: i for i, c in enumerate(self.categories)}
        self.neighbour_w64 = self.neighbour_w.astype(np.float64)
        self.popularity_pad = np.append(self.popularity, np.float32(0.0))
        self.trend_pad = np.append(self.trend, np.float32(0.0))
        self.item_category_pad = np.append(self.item_category, -1)
        self.neighbour_len: I64 = np.diff(self.neighbour_ptr)
        sources = np.repeat(np.arange(n), self.neighbour_len)
        self.name_rank = np.argsort(np.argsort(np.array(self.items, dtype=np.str_), kind="stable"))
        # every edge by (source row x n + target), ascending, the strongest first among equal
        # keys: one searchsorted finds the edges of many (voter, offered item) pairs (reasons)
        edge_key = sources * n + self.neighbour_idx
        by_key = np.lexsort((-self.neighbour_w64, edge_key))
        # and one more key past every real one (n x n), so a search never runs off the end
        self.edge_key: I64 = np.append(edge_key[by_key], n * n)
        self.edge_w: F64 = np.append(self.neighbour_w64[by_key], 0.0)
        half = max(1, self.params.popular_items // 2)
        ordered = [int(j) for j in np.lexsort((np.arange(n), -self.trend)) if self.trend[j] > 0]
        self.trending = [self.items[j] for j in ordered[:half]]
        self.trending_in: dict[str, list[str]] = {}
        for j in ordered:
            c = int(self.item_category[j])
            if c >= 0:
                bucket = self.trending_in.setdefault(self.categories[c], [])
                if len(bucket) < half:
                    bucket.append(self.items[j])

    @property
    def coef(self) -> F64:
        """The weights on the raw signals (computed again only when weights or spread change,
        also in place: the key is their bytes)."""
        key = self.weights.tobytes() + self.spread.tobytes()
        cached = self._coef
        if cached is None or cached[0] != key:
            coef: F64 = self.weights / np.where(self.spread > 0, self.spread, 1.0)
            coef.flags.writeable = False
            self._coef = cached = (key, coef)
        return cached[1]

    @property
    def servable(self) -> bool:
        """The tables give propensities (they carry the ranker's offset)."""
        return self.offset is not None

    def logits(self, rows: F64) -> F64:
        """The ranker's logit of each row of signals (0 offset when none was kept)."""
        out: F64 = rows @ self.coef + (self.offset or 0.0)
        return out

    def probability(self, rows: F64) -> F64:
        """``sigmoid(logit)``: the probability that a candidate is among the items of the
        shopper's next ``horizon`` target events (views, carts or purchases with ``--target
        any``; the training config's horizon, 3 by default), calibrated on the end-of-training
        moments, including those whose next target was no candidate."""
        return sigmoid(self.logits(rows))

    def memory_bytes(self) -> int:
        """About what the loaded tables hold in memory: every array, and the item index and
        names (Python objects, estimated from their sizes); with ``zmot_native`` loaded, also
        the copy its candidate pass keeps (4 + 4 bytes per co-visitation edge, about 120 per
        item of its per-item arrays and scratch)."""
        import sys

        arrays = sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))
        names = sum(sys.getsizeof(s) for s in self.items) + sys.getsizeof(self.items)
        # the index dict: a slot per entry (hash, key and value pointers) plus the int objects
        index = sys.getsizeof(self.index) + 28 * len(self.index)
        native = 0 if NATIVE is None else 8 * len(self.neighbour_idx) + 120 * (len(self.items) + 1)
        return int(arrays + names + index + native)

    def category_of(self, item: str) -> str | None:
        j = self.index.get(item)
        c = int(self.item_category[j]) if j is not None else -1
        return self.categories[c] if c >= 0 else None

    def learned(self) -> dict[str, float]:
        """The ranker's weights on standardised signals by name ({} when it learned nothing)."""
        if not self.weights.any():
            return {}
        return {name: float(w) for name, w in zip(FEATURES, self.weights, strict=True)}

    # --- persistence ----------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``hybrid.npz``; return the ``meta.json`` entry that goes with it."""
        np.savez(
            directory / FILE,
            items=np.array(self.items, dtype=np.str_),
            neighbour_ptr=self.neighbour_ptr,
            neighbour_idx=self.neighbour_idx.astype(np.int32),  # half the size; loads as int64
            neighbour_w=self.neighbour_w,
            popularity=self.popularity,
            trend=self.trend,
            categories=np.array(self.categories, dtype=np.str_),
            item_category=self.item_category.astype(np.int32),
            weights=self.weights,
            spread=self.spread,
        )
        return {
            "file": FILE,
            "features": list(FEATURES),
            "params": asdict(self.params),
            "half_life_s": self.half_life_s,
            "weights": self.learned(),
            "offset": self.offset,
            "purchase_rule": self.purchase_rule,
            "info": self.info,
        }

    @staticmethod
    def reads(features: Any) -> bool:
        """Tables fitted on these signals can serve here: :data:`FEATURES` or, from an older
        zmot, its first ones (signals are only ever appended)."""
        known = [str(name) for name in features] if isinstance(features, list) else []
        return bool(known) and known == list(FEATURES[: len(known)])

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> HybridTables:
        """The tables :meth:`save` wrote; ModelError when they are missing or do not fit.

        Tables of an older zmot whose signals are the first of :data:`FEATURES` (signals are
        only ever appended) load with weight 0 on the signals they did not know, so they rank
        exactly as they did."""
        if not cls.reads(meta.get("features", [])):
            raise ModelError(f"{directory}: hybrid signals {meta.get('features')} unknown here")
        missing = len(FEATURES) - len(meta["features"])
        if missing:
            log.info("%s: hybrid signals %s are new here: weight 0", directory, FEATURES[-missing:])
        path = directory / str(meta.get("file", FILE))
        try:
            arrays = np.load(path, allow_pickle=False)
            return cls(
                items=[str(s) for s in arrays["items"].tolist()],
                neighbour_ptr=arrays["neighbour_ptr"].astype(np.int64),
                neighbour_idx=arrays["neighbour_idx"].astype(np.int64),
                neighbour_w=arrays["neighbour_w"].astype(np.float32),
                popularity=arrays["popularity"].astype(np.float32),
                trend=arrays["trend"].astype(np.float32),
                categories=[str(s) for s in arrays["categories"].tolist()],
                item_category=arrays["item_category"].astype(np.int64),
                params=HybridParams(**meta.get("params", {})),
                half_life_s=float(meta["half_life_s"]),
                weights=np.append(arrays["weights"].astype(np.float64), np.zeros(missing)),
                spread=np.append(arrays["spread"].astype(np.float64), np.ones(missing)),
                info=dict(meta.get("info", {})),
                offset=None if meta.get("offset") is None else float(meta["offset"]),
                purchase_rule=meta.get("purchase_rule", True) is not False,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot read the hybrid tables at {path}: {exc}") from exc


def vote_array(tables: HybridTables, own: list[tuple[str, float]]) -> F64:
    """Summed co-visitation votes for every item of the tables (index = table position): each
    of the profile's items ``(id, weight)`` votes for its neighbours with ``its weight / the
    sum of the item weights``."""
    total = sum(w for _, w in own)
    found = [(j, w) for j, w in ((tables.index.get(item), w) for item, w in own) if j is not None]
    return _votes(tables, found, total)


def _votes(tables: HybridTables, found: list[tuple[int, float]], total: float) -> F64:
    """:func:`vote_array` from table positions: one gather of every voter's neighbour row."""
    rows = np.fromiter((j for j, _ in found), dtype=np.int64, count=len(found))
    weights = np.fromiter((w for _, w in found), dtype=np.float64, count=len(found))
    return _vote_rows(tables, rows, weights, total)[:-1]


def _vote_rows(tables: HybridTables, rows: I64, weights: F64, total: float) -> F64:
    """:func:`_votes` of voters given as arrays (table rows and weights), with one more slot,
    0, at the end (what a candidate outside the tables reads)."""
    n = len(tables.items)
    if not len(rows) or total <= 0:
        return np.zeros(n + 1)
    share = weights / total
    lo, hi = tables.neighbour_ptr[rows], tables.neighbour_ptr[rows + 1]
    length = hi - lo
    size = int(length.sum())
    if size == 0:
        return np.zeros(n + 1)
    # the flat positions of all those rows: each row's start, then 0, 1, ... within it
    start = np.repeat(lo - (np.cumsum(length) - length), length)
    at = start + np.arange(size)
    edge = tables.neighbour_w64[at] * np.repeat(share, length)
    summed = np.bincount(tables.neighbour_idx[at], weights=edge, minlength=n + 1)
    return summed.astype(np.float64, copy=False)


def covisit_votes(tables: HybridTables, own: list[tuple[str, float]]) -> dict[str, float]:
    """:func:`vote_array` of the items that got a vote, by id."""
    summed = vote_array(tables, own)
    return {tables.items[j]: float(summed[j]) for j in np.flatnonzero(summed > 0).tolist()}


def own_items(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """The profile's items ``(id, normalised weight)``, strongest first (ties: id)."""
    return [(item, -w) for w, item in sorted((-w, item) for item, w in item_weights(weights))]


def moment(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None = None,
) -> tuple[list[str], F64]:
    """The candidates for ``profile`` at request time ``now`` and their signals (one row per
    candidate, columns in :data:`FEATURES` order). ``z``: the model's standardised scores for
    the profile when the caller has them (else computed here)."""
    names, _, rows = candidates(tables, model, profile, now, z)
    return names, rows


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
    trending: list[int]
    trending_in: dict[str, list[int]]
    static: F64
    """The signals of :data:`STATIC` by universe position (one more row, all 0, for the
    padding slot): what every candidate reads from the model and the tables alone."""
    category: I64
    """The tables' category of each universe position (-1: none), padding slot included."""
    model_at: npt.NDArray[np.intp]
    """The model position of each universe position (-1: not a model item), padding slot
    included."""
    table_row: dict[str, int]
    """Item -> table position, for the items of the tables."""
    native: Any = None
    """The ``zmot_native.CandidatePass`` of this universe, built on first use."""


def universe(tables: HybridTables, model: Model | None) -> Universe:
    """The :class:`Universe` of ``tables`` and ``model`` (cached on the tables per model)."""
    if tables.bound is not None and tables.bound[0] is model:
        return tables.bound[1]
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

    model_at = np.full(len(names) + 1, -1, dtype=np.intp)
    model_at[:n_model] = np.arange(n_model)
    static = np.zeros((len(names) + 1, len(STATIC)))
    static[:n_model, 0] = 1.0  # in_model
    static[:, 1] = tables.popularity_pad[to_table]
    static[:, 2] = tables.trend_pad[to_table]
    made = Universe(
        names=names,
        index=index,
        n_model=n_model,
        to_table=to_table,
        from_table=from_table,
        trending=[index[item] for item in tables.trending],
        trending_in={c: [index[item] for item in items] for c, items in tables.trending_in.items()},
        static=static,
        category=tables.item_category_pad[to_table],
        model_at=model_at,
        table_row=dict(tables.index),
    )
    tables.bound = (model, made)
    return made


def candidates(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None = None,
) -> tuple[list[str], npt.NDArray[np.intp], F64]:
    """:func:`moment`, with each candidate's model position (-1: unknown to the model)."""
    u = universe(tables, model)
    picked, extra, at, rows = candidate_rows(tables, model, profile, now, z)
    names = [u.names[j] if j < len(u.names) else extra[j - len(u.names)] for j in picked.tolist()]
    return names, at, rows


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
    ``weights``: the profile's normalised weights when the caller has them.

    Serving runs this on every request, so it is written for few numpy calls over small
    arrays (the profile's items, the candidates) and tables built at load
    (:class:`Universe`); ``tests/recommender/core/hybrid_reference.py`` keeps the plainer
    version it must agree with exactly."""
    return _candidate_rows(tables, model, profile, now, z, weights)[:4]


Voters = tuple[list[int], list[float]]
"""The table rows (-1: not in the tables) and weights of a profile's items, strongest first."""


class _ProfileParts(NamedTuple):
    """What both candidate passes read from the profile (:func:`_read_profile`)."""

    own: list[tuple[float, str, str]]
    """(-weight, item, feature name) of the profile's items, strongest first (ties: id)."""
    categories: list[tuple[float, str]]
    """(weight, category), strongest first (ties: name, reversed)."""
    recent: list[tuple[float, str]]
    """(-touch time, item) of the remembered touches, newest first."""
    extra: list[str]
    first_extra: dict[str, int]
    own_list: list[int]
    recent_list: list[int]
    own_wl: list[float]
    own_rows: list[int]
    voter_rows: list[int]


def _read_profile(
    tables: HybridTables, u: Universe, profile: Profile, weights: Mapping[str, float]
) -> _ProfileParts:
    """One pass over the profile: its items strongest first (ties: id), as own_items() orders
    them, and its categories strongest first (ties: name, reversed); its touches newest first;
    their universe positions and table rows."""
    index = u.index
    size = len(u.names)
    own: list[tuple[float, str, str]] = []
    categories: list[tuple[float, str]] = []
    for name, w in weights.items():
        if name.startswith(ITEM_PREFIX):
            own.append((-w, name[_ITEM:], name))
        elif name.startswith(CATEGORY_PREFIX):
            categories.append((w, name[_CATEGORY:]))
    own.sort()
    categories.sort(reverse=True)
    recent = sorted((-t, item) for item, t in profile.touched.items())  # newest first
    extra: list[str] = []
    first_extra: dict[str, int] = {}

    def positions(items: list[str]) -> list[int]:
        """Universe positions of ``items``; each item outside it takes the next position
        after the universe (named in ``extra``), a new one each time (an item outside the
        universe that is both held and touched is two candidates, as it always was)."""
        found = [index.get(item, -1) for item in items]
        if -1 in found:
            for i, item in enumerate(items):
                if found[i] < 0:
                    found[i] = size + len(extra)
                    first_extra.setdefault(item, found[i])
                    extra.append(item)
        return found

    own_items_ = [item for _, item, _ in own]
    own_list = positions(own_items_)
    recent_items = [item for _, item in recent]
    recent_list = positions(recent_items)
    table_row = u.table_row
    return _ProfileParts(
        own=own,
        categories=categories,
        recent=recent,
        extra=extra,
        first_extra=first_extra,
        own_list=own_list,
        recent_list=recent_list,
        own_wl=[-w for w, _, _ in own],
        own_rows=[table_row.get(item, -1) for item in own_items_],
        voter_rows=[
            table_row.get(item, -1) for item in recent_items[: tables.params.recent_voters]
        ],
    )


def _candidate_rows(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None,
    weights: Mapping[str, float] | None,
) -> tuple[I64, list[str], npt.NDArray[np.intp], F64, Voters]:
    """:func:`candidate_rows`, and the profile's items as the co-visitation votes read them
    (:class:`Voters`: what :meth:`HybridScorer.lifted_by_many` asks about next): the native
    pass (:func:`_candidate_rows_native`) when ``zmot_native`` is there (:data:`NATIVE`), else
    the numpy one (:func:`_candidate_rows_numpy`), which gives exactly the same."""
    if NATIVE is not None:
        return _candidate_rows_native(tables, model, profile, now, z, weights)
    return _candidate_rows_numpy(tables, model, profile, now, z, weights)


_NATIVE_LOGS = [
    FEATURES.index(name)
    for name in (
        "weight",
        "hours_since_touch",
        "log_covisit",
        "log_covisit_recent",
        "log_own_share",
    )
]
"""The columns the native pass leaves to numpy's ``log1p`` (it writes their arguments)."""
_HOURS_AT = FEATURES.index("hours_since_touch")
_HOURS_SQ_AT = FEATURES.index("hours_since_touch_sq")


def _candidate_rows_native(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None,
    weights: Mapping[str, float] | None,
) -> tuple[I64, list[str], npt.NDArray[np.intp], F64, Voters]:
    """:func:`_candidate_rows_numpy` in one call of ``zmot_native`` (Rust) that also reads the
    profile's dicts (``CandidatePass.run_profile``: what :func:`_read_profile` and
    :func:`_candidate_rows_native_read` read in Python); the model's top items come from
    ``zmot_native.top_items`` (numpy's ``argpartition`` when the cut is a tie,
    :func:`_native_best`) and numpy takes the ``log1p`` of five columns, so every value is the
    numpy pass's, exactly. Dicts the native reading does not take (a weight that is not a
    float, NaN, a name that is not UTF-8) are read in Python
    (:func:`_candidate_rows_native_read`)."""
    p = tables.params
    u, native, weights, z, factor = _native_inputs(tables, model, profile, now, z, weights)
    held, touched, purchases = profile.weights, profile.touched, profile.purchases
    if type(weights) is not dict or type(held) is not dict:
        return _candidate_rows_native_read(tables, model, profile, now, z, weights)
    if type(touched) is not dict or type(purchases) is not dict:
        return _candidate_rows_native_read(tables, model, profile, now, z, weights)
    got = native.run_profile(
        weights,
        held,
        touched,
        purchases,
        factor,
        now,
        z,
        _native_best(z, p.model_items) if z is not None and model is not None else None,
        p.recent_voters,
        p.own_items,
        p.covisit_items,
        p.recent_covisit_items,
        p.max_candidates,
    )
    if got is None:
        return _candidate_rows_native_read(tables, model, profile, now, z, weights)
    picked, at, rows, logs, extra, own_rows, own_wl = got
    np.log1p(logs, out=logs)  # the columns _NATIVE_LOGS, apart: numpy's log1p, in one call
    native.place_logs(rows, logs)  # back in their columns, and hours_since_touch squared
    return picked, extra, at, rows, (own_rows, own_wl)


def _native_inputs(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None,
    weights: Mapping[str, float] | None,
) -> tuple[Universe, Any, Mapping[str, float], F64 | None, float]:
    """What both native passes start from: the universe and its ``CandidatePass``, the
    profile's normalised weights and the model's standardised scores (computed when the caller
    has not), and the profile's decay factor from its landmark to ``now``."""
    u = universe(tables, model)
    native = u.native or _native_of(tables, model)
    if weights is None:
        weights = profile.normalised()
    if z is None and model is not None:
        z = ItemScorer(model, purchase_exclusion_s=0.0).scores(profile, now)
    landmark = profile.landmark
    factor = 0.0 if landmark is None else 2.0 ** ((landmark - now) / tables.half_life_s)
    return u, native, weights, z, factor


def _native_best(z: F64, k: int) -> I64:
    """:func:`_best` from ``zmot_native.top_items`` when it gives the same (no tie across the
    cut, no NaN), else numpy's."""
    top_items = getattr(NATIVE, "top_items", None)
    top = None if top_items is None else top_items(z, k)
    return _best(z, k) if top is None else top


def _candidate_rows_native_read(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None,
    weights: Mapping[str, float] | None,
) -> tuple[I64, list[str], npt.NDArray[np.intp], F64, Voters]:
    """:func:`_candidate_rows_native` with the profile's dicts read in Python: the votes, the
    best voted items, the candidate order and the signal rows in one call of ``zmot_native``
    (``CandidatePass.run``); Python reads the profile's dicts, the model's top items and the
    strong categories' trending items, and takes numpy's ``log1p`` of five columns (so every
    value is the numpy pass's, exactly). What served before the native pass read the dicts
    itself, kept for the dicts it does not take, and tested against it."""
    p = tables.params
    u, native, weights, z, factor = _native_inputs(tables, model, profile, now, z, weights)
    read = _read_profile(tables, u, profile, weights)
    own, categories, recent = read.own, read.categories, read.recent
    held = profile.weights
    index, first_extra = u.index, read.first_extra
    purchases = [
        (j, math.log1p(max(0.0, now - bought) / HOUR))
        for item, bought in profile.purchases.items()
        if (j := index.get(item, first_extra.get(item))) is not None
    ]
    category_share: list[tuple[int, float]] = []
    if categories and categories[0][0]:
        top = categories[0][0]
        category_index = tables.category_index
        category_share = [
            (c, w_ / top) for w_, name in categories if (c := category_index.get(name)) is not None
        ]
    picked, at, rows = native.run(
        read.own_list,
        read.own_rows,
        read.own_wl,
        sum(read.own_wl),
        [held.get(name, 0.0) for _, _, name in own],
        factor,
        read.recent_list,
        [max(0.0, now - -t) / HOUR for t, _ in recent],
        read.voter_rows,
        _best(z, p.model_items) if z is not None and model is not None else None,
        _strong_trending(u, categories, len(u.trending)),
        purchases,
        category_share,
        len(read.extra),
        z,
        p.own_items,
        p.covisit_items,
        p.recent_covisit_items,
        p.max_candidates,
    )
    rows[:, _NATIVE_LOGS] = np.log1p(rows[:, _NATIVE_LOGS])
    hours = rows[:, _HOURS_AT]
    rows[:, _HOURS_SQ_AT] = hours * hours
    return picked, read.extra, at, rows, (read.own_rows, read.own_wl)


def _native_of(tables: HybridTables, model: Model | None) -> Any:
    """The ``zmot_native.CandidatePass`` of ``tables`` joined with ``model`` (built once per
    :class:`Universe`: it copies the arrays it reads)."""
    u = universe(tables, model)
    if u.native is None:
        u.native = _native_pass(tables, u)
    return u.native


def _native_pass(tables: HybridTables, u: Universe) -> Any:
    assert NATIVE is not None
    made = NATIVE.CandidatePass(
        tables.neighbour_ptr.astype(np.int64),
        tables.neighbour_idx.astype(np.int64),
        tables.neighbour_w.astype(np.float32),
        tables.name_rank.astype(np.int64),
        tables.item_category.astype(np.int64),
        len(tables.categories),
        u.from_table.astype(np.int64),
        u.to_table.astype(np.int64),
        u.model_at.astype(np.int64),
        u.category.astype(np.int64),
        np.ascontiguousarray(u.static, dtype=np.float64),
        list(u.trending),
    )
    made.bind_names(u.index, u.table_row, tables.category_index, u.trending_in)
    return made


def _candidate_rows_numpy(
    tables: HybridTables,
    model: Model | None,
    profile: Profile,
    now: float,
    z: F64 | None,
    weights: Mapping[str, float] | None,
) -> tuple[I64, list[str], npt.NDArray[np.intp], F64, Voters]:
    """:func:`_candidate_rows` in numpy: the fallback when ``zmot_native`` is not there, and
    the oracle the native pass is tested against (``tests/recommender/core/test_native.py``)."""
    p = tables.params
    u = universe(tables, model)
    size = len(u.names)
    if weights is None:
        weights = profile.normalised()
    if z is None and model is not None:
        z = ItemScorer(model, purchase_exclusion_s=0.0).scores(profile, now)
    index = u.index
    read = _read_profile(tables, u, profile, weights)
    own, categories, recent = read.own, read.categories, read.recent
    extra, first_extra = read.extra, read.first_extra
    own_list, recent_list, own_wl = read.own_list, read.recent_list, read.own_wl
    own_rows, voter_rows = read.own_rows, read.voter_rows
    total = sum(own_wl)
    summed, voters = _both_votes(tables, own_rows, own_wl, total, voter_rows)
    n_tab = len(tables.items) + 1
    parts: list[list[int]] = [own_list[: p.own_items], recent_list]
    parts.extend(_best_voted(tables, u, summed, n_tab, p.covisit_items, p.recent_covisit_items))
    if z is not None and model is not None:
        parts.append(_best(z, p.model_items).tolist())
    parts.append(u.trending)
    parts.append(_strong_trending(u, categories, len(u.trending)))
    # first occurrences in order: a dict keeps insertion order and costs O(candidates), not
    # O(catalogue) like a position array would
    order = list(dict.fromkeys(chain.from_iterable(parts)))[: p.max_candidates]
    picked = np.array(order, dtype=np.int64)
    n = len(picked)
    clipped = np.minimum(picked, size)  # the padding slot: outside the universe
    ti = u.to_table[clipped]
    at = u.model_at[clipped]
    rows = np.zeros((n, len(FEATURES)))
    rows[:, _STATIC_AT] = u.static[clipped]
    if z is not None:
        rows[:, 0] = np.append(z, 0.0)[at]
    both = summed.reshape(2, n_tab)[:, ti]
    rows[:, 2] = both[0]
    rows[:, 15] = both[1]
    row_of: dict[int, int] | None = None
    if own:
        landmark = profile.landmark
        factor = 0.0 if landmark is None else 2.0 ** ((landmark - now) / tables.half_life_s)
        held = profile.weights
        raw = np.array([held.get(name, 0.0) for _, _, name in own], dtype=np.float64)
        own_w = np.array(own_wl, dtype=np.float64)
        share_of_top = own_w / own_w[0] if own_w[0] else np.zeros(len(own))
        if len(own) <= min(p.own_items, n):
            # the usual case: the profile's items are the first candidates, in order
            block = rows[: len(own), 3:7]
            block[:, 0] = 1.0
            block[:, 1] = share_of_top
            block[:, 2] = _inverse_ranks(len(own))
            block[:, 3] = np.log1p(raw * factor)
        else:
            row_of = dict(zip(order, range(n), strict=True))
            r = np.array([row_of.get(j, -1) for j in own_list], dtype=np.int64)
            hit = r >= 0
            rh = r[hit]
            rows[rh, 3] = 1.0
            rows[rh, 4] = share_of_top[hit]
            rows[rh, 5] = 1.0 / (1.0 + np.flatnonzero(hit))
            rows[rh, 6] = np.log1p(raw * factor)[hit]
    touched: tuple[I64, I64] | None = None
    if row_of is None and (recent or profile.purchases):
        row_of = dict(zip(order, range(n), strict=True))
    if recent and row_of is not None:
        # (candidate row, recency rank) of the remembered touches that are candidates
        hits = [(r_, i) for i, j in enumerate(recent_list) if (r_ := row_of.get(j, -1)) >= 0]
        if hits:
            rh = np.array([r_ for r_, _ in hits], dtype=np.int64)
            touch_rank = np.array([i for _, i in hits], dtype=np.int64)
            # hours since each touch (IEEE operations: numpy's values), log1p'd as an array
            hours = np.log1p(np.array([max(0.0, now - -t) / HOUR for t, _ in recent]))
            block = np.empty((len(rh), 3))
            block[:, 0] = 1.0
            block[:, 1] = _inverse_ranks(len(recent))[touch_rank]
            block[:, 2] = hours[touch_rank]
            rows[rh, 12:15] = block
            touched = (rh, touch_rank)
    for item, bought in profile.purchases.items():
        j = index.get(item)
        if j is None:
            j = first_extra.get(item)
        r_ = row_of.get(j, -1) if j is not None and row_of is not None else -1
        if r_ >= 0:
            rows[r_, 7] = 1.0
            rows[r_, 8] = math.log1p(max(0.0, now - bought) / HOUR)
    if len(voters):
        kinds = tables.item_category_pad[voters]  # -1 (no category) counts in no category
        kinds = kinds[kinds >= 0]
        if len(kinds):
            share = np.bincount(kinds, minlength=len(tables.categories) + 1) / len(voters)
            share[-1] = 0.0
            rows[:, 16] = share[u.category[clipped]]
    if categories and categories[0][0]:
        share = np.zeros(len(tables.categories) + 1)  # last: no category
        for w_, name in categories:
            c = tables.category_index.get(name)
            if c is not None:
                share[c] = w_ / categories[0][0]
        rows[:, 11] = share[u.category[clipped]]
    _fill_candidate_shapes(rows, both, touched)
    return picked, extra, at, rows, (own_rows, own_wl)


def _both_votes(
    tables: HybridTables,
    own_rows: list[int],
    own_w: list[float],
    total: float,
    voter_rows: list[int],
) -> tuple[F64, I64]:
    """The ``covisit`` votes of the profile's items (table rows, -1: not in the tables; each
    votes by its share of ``total``) and then the ``covisit_recent`` votes of its newest
    touched items (the i-th by 1/(i+1)), per table position with a padding slot, 0, after
    each half; and the table rows of those newest items (as an array). One gather and one
    bincount for both (the second group's bins shifted past the first's), which adds every
    bin's terms in the same order as two separate passes. The shares are divided in Python:
    IEEE divisions, the values numpy's would be."""
    n = len(tables.items) + 1
    voters = np.array(voter_rows, dtype=np.int64)
    voting = [j for j in own_rows if j >= 0] if total > 0 else []
    split = len(voting)
    shares = [w / total for j, w in zip(own_rows, own_w, strict=True) if j >= 0] if split else []
    for i, j in enumerate(voter_rows):
        if j >= 0:
            voting.append(j)
            shares.append(1.0 / (1.0 + i))
    if not voting:
        return np.zeros(2 * n), voters
    rows = np.array(voting, dtype=np.int64)
    lo, length = tables.neighbour_ptr[rows], tables.neighbour_len[rows]
    ends = np.cumsum(length)
    size = int(ends[-1])
    if size == 0:
        return np.zeros(2 * n), voters
    # the flat positions of all those rows: each row's start, then 0, 1, ... within it
    flat = np.repeat(lo - (ends - length), length) + np.arange(size)
    edge = tables.neighbour_w64[flat] * np.repeat(np.array(shares), length)
    target = tables.neighbour_idx[flat]
    target[int(ends[split - 1]) if split else 0 :] += n
    summed: F64 = np.bincount(target, weights=edge, minlength=2 * n).astype(np.float64, copy=False)
    return summed, voters


def _best_voted(
    tables: HybridTables, u: Universe, summed: F64, n: int, k_own: int, k_recent: int
) -> list[list[int]]:
    """The universe positions of the ``k_own`` items with the most ``covisit`` votes and of
    the ``k_recent`` with the most ``covisit_recent`` votes (``summed``: both halves, ``n``
    each), most first (ties: id).

    Each half sorts only the items that can be among its best: with more voted items than
    places, those with at least the k-th largest vote (a partition finds it), ties at it
    included, so the order and the cut are a full sort's."""
    out: list[list[int]] = []
    for half, k in ((summed[:n], k_own), (summed[n:], k_recent)):
        voted = half > 0  # the padding slot is 0, never voted
        count = int(np.count_nonzero(voted))
        if count > k > 0:
            kth = np.partition(half, n - k)[n - k]  # the k-th largest vote, > 0
            some = np.flatnonzero(half >= kth)
        else:
            some = np.flatnonzero(voted)
        best = some[np.lexsort((tables.name_rank[some], -half[some]))[: max(k, 0)]]
        out.append(u.from_table[best].tolist())
    return out


def _inverse_ranks(k: int) -> F64:
    """``1 / (1 + rank)`` for ranks 0 .. k-1 (grown as needed, computed as the signals are)."""
    global _INVERSE
    if len(_INVERSE) < k:
        _INVERSE = np.divide(1.0, 1.0 + np.arange(max(k, 2 * len(_INVERSE))))
    return _INVERSE[:k]


_INVERSE: F64 = np.divide(1.0, 1.0 + np.arange(256))
STATIC = ("in_model", "popularity", "trend")
"""Signals of a candidate that depend on the model and the tables alone."""
_STATIC_AT = [FEATURES.index(name) for name in STATIC]


_ITEM, _CATEGORY = len(ITEM_PREFIX), len(CATEGORY_PREFIX)
_TOUCH_BINS = np.array([0.5, 1.5, 2.5, 4.5, 9.5])
"""Upper edges of the recency ranks (0 = newest) of ``touch_1`` ... ``touch_6_10``."""
_AT = {name: j for j, name in enumerate(FEATURES)}
_BINS_AT = _AT["touch_1"]
_LOGS_AT = [_AT[name] for name in ("log_covisit", "log_covisit_recent", "log_own_share")]
_LOGS_OF = [_AT[name] for name in ("covisit", "covisit_recent", "own_share")]
"""``log1p(100 x)`` columns and the columns they are taken of."""


def shapes(base: F64) -> F64:
    """``base`` (columns :data:`BASE`) with the :data:`SHAPES` columns appended."""
    out = np.zeros((len(base), len(FEATURES)))
    out[:, : len(BASE)] = base
    touched = base[:, _AT["touched"]] > 0
    # touch_rank is 1 / (1 + rank): back to the rank, then one column per bin
    rank = np.where(touched, 1.0 / np.maximum(base[:, _AT["touch_rank"]], 1e-12) - 1.0, 0.0)
    where = np.flatnonzero(touched)
    _fill_shapes(out, (where, np.rint(rank[where])))
    return out


def _fill_shapes(rows: F64, touched: tuple[I64, npt.NDArray[Any]] | None) -> None:
    """Fill the :data:`SHAPES` columns of ``rows`` from its :data:`BASE` columns; ``touched``:
    the rows of remembered touches and their recency ranks (0: newest)."""
    rows[:, _LOGS_AT] = np.log1p(100.0 * rows[:, _LOGS_OF])
    _fill_touches_and_products(rows, touched if touched is not None and len(touched[0]) else None)


def _fill_candidate_shapes(rows: F64, both: F64, touched: tuple[I64, I64] | None) -> None:
    """:func:`_fill_shapes` for :func:`candidate_rows`, from the vote columns it holds as one
    array (``both``): the same values, in fewer numpy calls."""
    logs = np.log1p(100.0 * both)
    rows[:, _AT["log_covisit"]] = logs[0]
    rows[:, _AT["log_covisit_recent"]] = logs[1]
    rows[:, _AT["log_own_share"]] = np.log1p(100.0 * rows[:, _AT["own_share"]])
    _fill_touches_and_products(rows, touched)


def _fill_touches_and_products(rows: F64, touched: tuple[I64, npt.NDArray[Any]] | None) -> None:
    """The recency-bin and squared-hours columns of the remembered touches (``touched``: their
    rows and recency ranks), then the product columns (``own_model``,
    ``category_popularity``)."""
    if touched is not None:
        where, rank = touched
        rows[where, _BINS_AT + np.searchsorted(_TOUCH_BINS, rank)] = 1.0
        hours = rows[where, _AT["hours_since_touch"]]
        rows[where, _AT["hours_since_touch_sq"]] = hours * hours
    rows[:, _AT["own_model"]] = rows[:, _AT["own"]] * rows[:, _AT["model"]]
    rows[:, _AT["category_popularity"]] = rows[:, _AT["category"]] * rows[:, _AT["popularity"]]


def _best(z: F64, k: int) -> I64:
    """:func:`~recommender.core.scoring.top_k` of finite scores, as an array."""
    n = min(k, len(z))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(z, len(z) - n)[len(z) - n :]
    return top[np.lexsort((top, -z[top]))].astype(np.int64)


def _strong_trending(u: Universe, categories: list[tuple[float, str]], room: int) -> list[int]:
    """Trending items of the strongest categories, in category order, each once, at most
    ``room`` of them."""
    seen: dict[int, None] = {}
    for _, category in categories:
        if len(seen) >= room:
            break
        for j in u.trending_in.get(category, ()):
            if len(seen) >= room:
                break
            seen.setdefault(j, None)
    return list(seen)


def rank(
    tables: HybridTables, model: Model | None, profile: Profile, now: float, depth: int
) -> list[str]:
    """The ``depth`` best candidates for ``profile`` at ``now``, best first (ties: candidate
    order)."""
    names, rows = moment(tables, model, profile, now)
    if not names:
        return []
    order = np.argsort(-(rows @ tables.coef), kind="stable")[:depth]
    return [names[j] for j in order.tolist()]


COVISIT = FEATURES.index("covisit")


def sigmoid(z: F64) -> F64:
    # np.clip's bounds as two ufuncs (np.clip's Python layer costs more than both)
    out: F64 = 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -50.0), 50.0)))
    return out


class HybridScorer(ItemScorer):
    """An :class:`~recommender.core.scoring.ItemScorer` whose scores and propensities come
    from the hybrid ranker: what the API decides with, and what ``zmot evaluate``'s ``live``
    ranks, when the model carries servable tables (:func:`serving_scorer`).

    A candidate (:func:`moment`) that the model knows scores its ranker logit and has the
    ranker's logistic output as propensity (:meth:`HybridTables.probability`). Every other
    model item has propensity 0, so the relevance floor keeps it out (unless the floor is 0),
    and scores below every candidate, in the model's order, so a category offer resolves to a
    candidate when its category has one. Items bought within ``purchase_exclusion_s`` score
    ``-inf``, as in the plain scorer; ``recent_boost`` is not used (the ranker weighs the
    profile's own items itself).
    """

    def __init__(
        self,
        model: Model,
        tables: HybridTables,
        *,
        purchase_exclusion_s: float,
        recent_boost: float = 0.0,
    ) -> None:
        super().__init__(
            model, purchase_exclusion_s=purchase_exclusion_s, recent_boost=recent_boost
        )
        self.tables = tables
        self.plain = ItemScorer(model, purchase_exclusion_s=0.0)
        self._last_voters: tuple[Mapping[str, float], I64, list[int], list[float]] | None = None
        self._scored: tuple[Mapping[str, float], Voters] | None = None
        """The weights last scored and their :class:`Voters` (the reasons of that request
        read them)."""

    def score(self, raw: F32, weights: Mapping[str, float], profile: Profile, now: float) -> Priced:
        z = self.plain.blend(raw, weights, profile, now)
        _, _, at, rows, voters = _candidate_rows(self.tables, self.model, profile, now, z, weights)
        self._scored = (weights, voters)
        return self.priced(z, at, rows, profile, now)

    def priced(
        self, z: F64, at: npt.NDArray[np.intp], rows: F64, profile: Profile, now: float
    ) -> Priced:
        """:meth:`score` from the model's standardised scores ``z`` and the candidates' model
        positions and signals."""
        index = self.model.item_index
        known = at >= 0
        where = at[known]
        # every candidate a model item (the usual case): the rows as they are, not a copy of
        # them (the same values in the same layout: the same logits)
        logit = self.tables.logits(rows if len(where) == len(at) else rows[known])
        native = getattr(NATIVE, "priced", None)
        if native is not None and len(z):
            # the same operations in two native calls around numpy's exp and reductions
            e = NATIVE.neg_clipped(logit)
            np.exp(e, out=e)
            shift = float(logit.min()) - 1.0 if len(logit) else None
            scores, propensity = native(z, float(z.max()), shift, at, logit, e)
        else:
            scores = z - z.max() if len(z) else z.copy()
            if len(logit):
                scores += float(logit.min()) - 1.0
            scores[where] = logit
            propensity = np.zeros(len(z))
            propensity[where] = sigmoid(logit)
        for item in self.excluded(profile, now):
            bought = index.get(item)
            if bought is not None:
                scores[bought] = -np.inf
        return scores, propensity

    def blend(self, raw: F32, weights: Mapping[str, float], profile: Profile, now: float) -> F64:
        return self.score(raw, weights, profile, now)[0]

    def lifted_by(self, weights: Mapping[str, float], item_id: str) -> str | None:
        """The profile item whose co-visitation vote for ``item_id`` is the largest (ties: the
        stronger item, then the id), when the ranker counts co-visitation for an item (a
        positive weight) and some item voted."""
        return self.lifted_by_many(weights, [item_id])[0]

    def lifted_by_many(
        self, weights: Mapping[str, float], item_ids: Sequence[str]
    ) -> list[str | None]:
        """:meth:`lifted_by` of each of ``item_ids`` (an answer's offers), with one
        searchsorted for every (profile item, offered item) pair instead of a pass over each
        offered item's voters."""
        t = self.tables
        out: list[str | None] = [None] * len(item_ids)
        if t.coef[COVISIT] <= 0 or len(t.edge_key) == 1:
            return out
        want = [(i, j) for i, item in enumerate(item_ids) if (j := t.index.get(item)) is not None]
        if not want:
            return out
        scored = self._scored
        if NATIVE is not None:  # the same search in one call (zmot_native)
            if scored is not None and scored[0] is weights:  # the voters the pass read
                voters, strength = scored[1]  # (Rust keeps those in the tables, weight > 0)
            else:
                _, voters, strength = self._voters_of(weights)
            found = _native_of(t, self.model).lifted_by(voters, strength, [j for _, j in want])
            for (i, _), voter in zip(want, found, strict=True):
                if voter >= 0:
                    out[i] = t.items[voter]
            return out
        rows, rows_list, strength = self._voters_of(weights)
        if not rows_list:
            return out
        targets = np.array([j for _, j in want], dtype=np.int64)
        keys = rows[:, None] * len(t.items) + targets
        at = np.searchsorted(t.edge_key, keys)  # the sentinel key: never past the end
        voter, column = np.nonzero(t.edge_key[at] == keys)
        best: dict[int, tuple[float, float, str]] = {}
        edges = t.edge_w[at[voter, column]].tolist()
        for r, c, edge in zip(voter.tolist(), column.tolist(), edges, strict=True):
            if rows_list[r] == want[c][1]:
                continue  # an item listed as its own neighbour does not lift itself
            w = strength[r]
            key = (-w * edge, -w, t.items[rows_list[r]])
            held = best.get(c)
            if held is None or key < held:
                best[c] = key
        for c, key in best.items():
            out[want[c][0]] = key[2]
        return out

    def _voters_of(self, weights: Mapping[str, float]) -> tuple[I64, list[int], list[float]]:
        """Table rows (ascending, as an array and a list) and weights of the profile's items
        with a positive weight.

        Kept for the last ``weights`` asked about (by identity: the arbiter passes one dict
        per request)."""
        last = self._last_voters
        if last is not None and last[0] is weights:
            return last[1], last[2], last[3]
        scored = self._scored
        if scored is not None and scored[0] is weights:  # the items the candidate pass read
            found = sorted((j, w) for j, w in zip(*scored[1], strict=True) if j >= 0 and w > 0)
        else:
            index = self.tables.index
            found = sorted(
                (j, w)
                for item, w in item_weights(weights)
                if w > 0 and (j := index.get(item)) is not None
            )
        rows_list = [j for j, _ in found]
        rows = np.array(rows_list, dtype=np.int64)
        strength = [w for _, w in found]
        self._last_voters = (weights, rows, rows_list, strength)
        return rows, rows_list, strength


def serving_scorer(
    model: Model, *, purchase_exclusion_s: float, recent_boost: float = 0.0, hybrid: bool = True
) -> ItemScorer:
    """The one scorer of the API and of ``live``: the hybrid ranker's when ``hybrid`` (the
    ``ZMOT_HYBRID`` setting) and the model carries servable tables, else the model blended
    with the profile's own items (exactly as without tables)."""
    tables = model.hybrid if hybrid else None
    if tables is not None and not tables.servable:
        log.warning("the model's hybrid tables keep no ranker offset: retrain with --hybrid")
        tables = None
    if tables is None:
        return ItemScorer(
            model, purchase_exclusion_s=purchase_exclusion_s, recent_boost=recent_boost
        )
    return HybridScorer(
        model, tables, purchase_exclusion_s=purchase_exclusion_s, recent_boost=recent_boost
    )
