"""Offline training: replay histories into contexts, fit LightFM, export a :class:`Model`.

A training row is a *context*: the profile of a user just before an event worth predicting
(built by replaying the history with :class:`recommender.core.replay.Profiler`, the function the
worker uses) paired with the item of that event. Each context is one LightFM "user" whose
features are the profile's L1-normalised weights, so training and serving see the same
features by construction. Items are represented by their id, category (and its top level)
and brand, so rarely seen items borrow strength from their neighbours.
"""

from __future__ import annotations

import hashlib
import logging
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from tqdm import tqdm

from recommender.core.calibration import Calibration
from recommender.core.catalog import Catalog
from recommender.core.errors import ModelError
from recommender.core.events import Event
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.core.scoring import items_seen
from recommender.offline.blas import one_blas_thread
from recommender.offline.propensity import fit_calibration_at, learn_complements

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

Target = Literal["any", "conversion"]
TARGET_TYPES: dict[str, frozenset[str]] = {
    "any": frozenset({"page_view", "add_to_cart", "purchase"}),
    "conversion": frozenset({"add_to_cart", "purchase"}),
}
ITEM_FEATURE_SHARES = {"id": 1.0, "cat": 0.5, "top": 0.25, "brand": 0.25}


@dataclass(frozen=True)
class TrainConfig:
    """LightFM hyper-parameters and the choice of training targets."""

    no_components: int = 48
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp"
    epochs: int = 30
    learning_rate: float = 0.05
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_sampled: int = 20
    target: Target = "any"
    horizon: int = 3
    seed: int = 42
    num_threads: int = 2
    calibration_share: float = 0.1
    """Share of users whose contexts are held out of the fit to calibrate propensities
    (:mod:`recommender.offline.propensity`); used only when that gives enough contexts."""
    epoch_budget: int = 10_000_000
    """Positive pairs LightFM may visit over all epochs (0: no limit). A history with more
    pairs than ``epoch_budget / epochs`` (333,000 at 30 epochs, about 125,000 target events)
    trains fewer epochs, at least one, so a fit's time stops growing with the history until
    one epoch alone exceeds the budget; a large shop's epoch already makes many more updates
    than all 30 of a small one's. Set high enough that histories of a few hundred thousand
    events keep their 30 epochs (what fewer epochs cost in quality was not measured); about
    2-4 minutes per epoch of 2.4M pairs on 2 busy cores (BENCHMARKS.md, "Offline at scale");
    ``zmot train`` runs four fits (its model and the ranker's three). The shared samples (at
    most 29,300 pairs, 26,400 fitted: 0.8M at 30 epochs, 1.3M at the tuned 50) never reach
    it."""

    def epochs_for(self, pairs: int) -> int:
        """The epochs a fit on ``pairs`` positive pairs runs (see :attr:`epoch_budget`)."""
        if self.epoch_budget <= 0 or pairs * self.epochs <= self.epoch_budget:
            return self.epochs
        return max(1, self.epoch_budget // max(1, pairs))


class ContextRows:
    """The contexts' profiles (L1-normalised feature weights), held flat: one vocabulary of
    feature names, then per row its feature ids and weights in the profile's order. A
    million contexts of ~45 features take about 0.55 GB this way, against about 2.7 GB as a
    dict per row. ``rows[j]`` gives row ``j`` back as the dict it was made from."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids: dict[str, int] = {}
        self._cols = array("i")
        self._vals = array("d")
        self._ptr = array("q", [0])

    def append(self, row: Mapping[str, float]) -> None:
        ids = self._ids
        for name, weight in row.items():
            j = ids.get(name)
            if j is None:
                j = ids[name] = len(self.names)
                self.names.append(name)
            self._cols.append(j)
            self._vals.append(weight)
        self._ptr.append(len(self._cols))

    def __len__(self) -> int:
        return len(self._ptr) - 1

    def __getitem__(self, j: int) -> dict[str, float]:
        lo, hi = self._ptr[j], self._ptr[j + 1]
        return {self.names[c]: v for c, v in zip(self._cols[lo:hi], self._vals[lo:hi], strict=True)}

    def __iter__(self) -> Iterator[dict[str, float]]:
        return (self[j] for j in range(len(self)))

    def matrix(self, keep: npt.NDArray[np.bool_]) -> tuple[sp.csr_matrix, list[str]]:
        """The kept rows as LightFM user features (rows: contexts, columns: the features they
        hold, sorted by name; entries in each row's own order) and those feature names."""
        ptr = np.frombuffer(self._ptr, dtype=np.int64)
        cols = np.frombuffer(self._cols, dtype=np.int32)
        lengths = np.diff(ptr)
        entry_kept = np.repeat(keep, lengths)
        cols = cols[entry_kept]
        vals = np.frombuffer(self._vals, dtype=np.float64)[entry_kept].astype(np.float32)
        present = sorted(np.unique(cols).tolist(), key=self.names.__getitem__)
        remap = np.full(len(self.names), -1, dtype=np.int32)
        remap[present] = np.arange(len(present), dtype=np.int32)
        indptr = np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64)
        matrix = sp.csr_matrix((vals, remap[cols], indptr), shape=(int(keep.sum()), len(present)))
        return matrix, [self.names[c] for c in present]


@dataclass
class Contexts:
    """Training rows: profile features before an event, the event's item, and what follows.

    ``positives[j]`` holds the distinct items of the target events from ``items[j]`` on, up
    to the horizon: an offer is worth showing when the shopper is about to want it soon, not
    only as the very next click (one repair-service view between a repair search and five
    TV views should not outweigh the TVs).
    """

    rows: ContextRows = field(default_factory=ContextRows)
    items: list[str] = field(default_factory=list)
    positives: list[list[str]] = field(default_factory=list)
    item_counts: Counter[str] = field(default_factory=Counter)
    users: list[str] = field(default_factory=list)


def build_contexts(
    events: Iterable[Event], profiler: Profiler, target: Target, horizon: int = 1
) -> Contexts:
    """Replay ``events`` (in the order given) and collect a context before each target event."""
    wanted = TARGET_TYPES[target]
    profiles: dict[str, Profile] = {}
    # per user: indices of contexts still collecting positives
    open_rows: dict[str, list[int]] = {}
    out = Contexts()
    for event in events:
        profile = profiles.setdefault(event.user_id, Profile())
        if event.type in wanted and event.item_id is not None:
            out.item_counts[event.item_id] += 1
            pending = open_rows.setdefault(event.user_id, [])
            for j in pending:
                if event.item_id not in out.positives[j]:
                    out.positives[j].append(event.item_id)
            if profile.weights:
                pending.append(len(out.rows))
                out.rows.append(profile.normalised())
                out.items.append(event.item_id)
                out.positives.append([event.item_id])
                out.users.append(event.user_id)
            open_rows[event.user_id] = [j for j in pending if len(out.positives[j]) < horizon]
        profiler.apply(profile, event)
    return out


def _item_features(item_ids: Sequence[str], catalog: Catalog) -> tuple[sp.csr_matrix, list[str]]:
    """Rows: items; columns: id, category, top category and brand features (L1-normalised)."""
    names: dict[str, int] = {}
    rows, cols, vals = [], [], []

    def put(row: int, name: str, value: float) -> None:
        rows.append(row)
        cols.append(names.setdefault(name, len(names)))
        vals.append(value)

    for row, item_id in enumerate(item_ids):
        put(row, f"id:{item_id}", ITEM_FEATURE_SHARES["id"])
        item = catalog.get(item_id)
        if item and item.category:
            put(row, f"cat:{item.category}", ITEM_FEATURE_SHARES["cat"])
            top = item.category.split(".", 1)[0]
            if top != item.category:
                put(row, f"top:{top}", ITEM_FEATURE_SHARES["top"])
        if item and item.brand:
            put(row, f"brand:{item.brand}", ITEM_FEATURE_SHARES["brand"])
    matrix = sp.csr_matrix(
        (np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(item_ids), len(names))
    )
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    matrix = sp.diags(1.0 / sums) @ matrix
    return sp.csr_matrix(matrix, dtype=np.float32), list(names)


CURVE_SAMPLE = 2000
"""Training contexts whose next item is ranked after each epoch to draw the training curve."""

CURVE_SCORES = 40_000_000
"""At most this many scores per point of the curve: with a catalog over 20,000 items the
sample shrinks (``CURVE_SAMPLE x 20,000 / items``, at least 100 contexts), so a large catalog
does not make every epoch rank 2,000 contexts against all of it (the curve is a diagnostic)."""


def curve_sample_size(n_contexts: int, n_items: int) -> int:
    """Contexts the training curve ranks after each epoch (see :data:`CURVE_SCORES`)."""
    cap = max(100, CURVE_SCORES // max(1, n_items))
    return min(CURVE_SAMPLE, cap, n_contexts)


SCORE_BLOCK = 1 << 20
"""Scores held at once when ranking many contexts against every item (4 MB in float32): the
curve's sample is scored in blocks of rows, so its memory does not grow with the catalog."""


def _sample_hit_rate(
    model: Any, user_x: sp.csr_matrix, item_x: sp.csr_matrix, targets: npt.NDArray[np.intp]
) -> float:
    """Share of sampled contexts whose next item is in the model's top 10 (training fit)."""
    users = np.asarray(user_x @ model.user_embeddings)
    items = np.asarray(item_x @ model.item_embeddings)
    biases = np.asarray(item_x @ model.item_biases).ravel()
    step = max(1, SCORE_BLOCK // max(1, len(biases)))
    hits = 0
    # one BLAS thread: a second one only spins between the blocks (more CPU, same values)
    with one_blas_thread():
        for lo in range(0, len(targets), step):
            scores = users[lo : lo + step] @ items.T
            scores += biases
            target_scores = scores[np.arange(len(scores)), targets[lo : lo + step]]
            hits += int(((scores > target_scores[:, None]).sum(axis=1) < 10).sum())
    return round(hits / max(1, len(targets)), 4)


MIN_CALIBRATION_CONTEXTS = 200
"""Fewer held-out contexts than this: no holdout, the default (uncalibrated) map is kept."""


def _held_out(users: Sequence[str], share: float) -> npt.NDArray[np.bool_]:
    """Contexts of a stable share of users (by a hash of the user id), kept out of the fit."""
    if share <= 0.0:
        return np.zeros(len(users), dtype=bool)
    cut = int(share * 10_000)
    mask = np.array(
        [int(hashlib.md5(u.encode()).hexdigest()[:8], 16) % 10_000 < cut for u in users],
        dtype=bool,
    )
    if mask.sum() < MIN_CALIBRATION_CONTEXTS or (~mask).sum() < MIN_CALIBRATION_CONTEXTS:
        return np.zeros(len(users), dtype=bool)
    return mask


def _calibrate(
    rows: Sequence[Mapping[str, float]],
    positives: Sequence[Sequence[str]],
    feature_index: Mapping[str, int],
    item_index: Mapping[str, int],
    feature_embeddings: npt.NDArray[np.float32],
    feature_biases: npt.NDArray[np.float32],
    item_vectors: npt.NDArray[np.float32],
    item_biases: npt.NDArray[np.float32],
    seed: int,
) -> Calibration | None:
    """Fit the propensity map on held-out contexts, scored exactly as serving scores them.

    Only the items the fit reads are scored (each context's positives and sampled negatives);
    the mean over all items that serving subtracts is the mean item vector times the user
    vector plus the mean bias, so the cost does not grow with contexts x catalog."""
    users: list[npt.NDArray[np.float64]] = []
    recents: list[dict[int, float]] = []
    pos: list[list[int]] = []
    for row, items in zip(rows, positives, strict=True):
        known = [(feature_index[n], w) for n, w in row.items() if n in feature_index and w > 0]
        if not known:
            continue
        idx = np.array([i for i, _ in known])
        vals = np.array([w for _, w in known])
        vals = vals / vals.sum()
        users.append(vals @ feature_embeddings[idx])
        seen = items_seen(row, item_index)
        top = max((w for _, w in seen), default=1.0)
        recents.append({position: w / top for position, w in seen})
        pos.append([item_index[i] for i in items if i in item_index])
    mean_vector = item_vectors.mean(axis=0, dtype=np.float64)
    mean_bias = float(item_biases.mean(dtype=np.float64))

    def score(context: int, at: npt.NDArray[np.intp]) -> tuple[F64, F64]:
        user = users[context]
        # the user's bias is the same for every item: only margins over the mean count
        raw = (item_vectors[at] @ user + item_biases[at]).astype(np.float64)
        raw -= float(mean_vector @ user) + mean_bias
        recent = recents[context]
        return raw, np.array([recent.get(j, 0.0) for j in at.tolist()])

    return fit_calibration_at(len(item_vectors), pos, score, seed=seed)


def train(
    events: Sequence[Event],
    catalog: Catalog,
    profiler: Profiler,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = False,
    desc: str = "training",
) -> Model:
    """Fit LightFM on the contexts of ``events`` and export a serving :class:`Model`
    (``desc`` names the progress bar)."""
    from lightfm import LightFM  # heavy import, only needed here

    started = time.monotonic()
    contexts = build_contexts(events, profiler, config.target, config.horizon)
    if not contexts.rows:
        raise ModelError(
            f"no training rows: no {config.target!r} target event follows an earlier event of "
            "the same user (a history needs at least two events per user)"
        )
    item_ids = sorted(set(catalog.items) | set(contexts.item_counts))
    item_index = {item: i for i, item in enumerate(item_ids)}

    held = _held_out(contexts.users, config.calibration_share)
    fit_positives = [p for p, h in zip(contexts.positives, held, strict=True) if not h]
    fit_items = [i for i, h in zip(contexts.items, held, strict=True) if not h]
    # features only held-out users have would get untrained embeddings: leave them out
    user_x, feature_names = contexts.rows.matrix(~held)
    feature_index = {name: i for i, name in enumerate(feature_names)}
    n_fit = user_x.shape[0]
    item_x, item_feature_names = _item_features(item_ids, catalog)
    pos_rows = [j for j, items in enumerate(fit_positives) for _ in items]
    pos_cols = [item_index[i] for items in fit_positives for i in items]
    interactions = sp.coo_matrix(
        (np.ones(len(pos_rows), dtype=np.float32), (pos_rows, pos_cols)),
        shape=(n_fit, len(item_ids)),
    )

    model = LightFM(
        no_components=config.no_components,
        loss=config.loss,
        learning_rate=config.learning_rate,
        item_alpha=config.item_alpha,
        user_alpha=config.user_alpha,
        max_sampled=config.max_sampled,
        random_state=np.random.RandomState(config.seed),
    )
    sample = np.random.RandomState(config.seed).choice(
        n_fit, size=curve_sample_size(n_fit, len(item_ids)), replace=False
    )
    sample_targets = np.array([item_index[fit_items[j]] for j in sample])
    curve: list[dict[str, float]] = []
    epochs = config.epochs_for(len(pos_rows))
    if epochs < config.epochs:
        log.info(
            "%d positive pairs: %d epochs instead of %d (epoch budget %d pairs)",
            len(pos_rows),
            epochs,
            config.epochs,
            config.epoch_budget,
        )
    for epoch in tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress):
        model.fit_partial(
            interactions,
            user_features=user_x,
            item_features=item_x,
            epochs=1,
            num_threads=config.num_threads,
        )
        curve.append(
            {
                "epoch": epoch + 1,
                "seconds": round(time.monotonic() - started, 3),
                "train_hr@10": _sample_hit_rate(model, user_x[sample], item_x, sample_targets),
            }
        )

    feature_embeddings = np.asarray(model.user_embeddings, dtype=np.float32)
    feature_biases = np.asarray(model.user_biases, dtype=np.float32)
    item_vectors = np.asarray(item_x @ model.item_embeddings, dtype=np.float32)
    item_biases = np.asarray(item_x @ model.item_biases, dtype=np.float32).ravel()
    popular = [item for item, _ in contexts.item_counts.most_common()]
    calibration = None
    if held.any():
        with one_blas_thread():  # one small product per held-out context
            calibration = _calibrate(
                [contexts.rows[j] for j in np.flatnonzero(held).tolist()],
                [p for p, h in zip(contexts.positives, held, strict=True) if h],
                feature_index,
                item_index,
                feature_embeddings,
                feature_biases,
                item_vectors,
                item_biases,
                config.seed,
            )
    complements = learn_complements(
        events, catalog, TARGET_TYPES["any"] | TARGET_TYPES[config.target], horizon=5
    )

    digest = hashlib.sha256(feature_embeddings.tobytes() + item_vectors.tobytes()).hexdigest()
    version = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + digest[:8]
    info = {
        "train_config": asdict(config),
        "n_events": len(events),
        "n_contexts": len(contexts.rows),
        "n_calibration_contexts": int(held.sum()),
        "n_positives": len(pos_rows),
        "epochs": epochs,
        "n_features": len(feature_names),
        "n_items": len(item_ids),
        "n_item_features": len(item_feature_names),
        "train_seconds": round(time.monotonic() - started, 3),
        "curve": curve,
    }
    log.info(
        "trained %s: %d contexts, %d features, %d items in %.1f s",
        version,
        len(contexts.rows),
        len(feature_names),
        len(item_ids),
        info["train_seconds"],
    )
    return Model(
        version=version,
        feature_names=feature_names,
        item_ids=item_ids,
        feature_embeddings=feature_embeddings,
        feature_biases=feature_biases,
        item_vectors=item_vectors,
        item_biases=item_biases,
        popular=popular,
        feature_config=profiler.features,
        profile_params=profiler.params,
        info=info,
        calibration=calibration or Calibration(),
        complements=complements,
    )
