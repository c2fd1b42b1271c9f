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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
from recommender.core.scoring import relative_item_weights
from recommender.offline.propensity import fit_calibration, learn_complements

log = logging.getLogger(__name__)

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


@dataclass
class Contexts:
    """Training rows: profile features before an event, the event's item, and what follows.

    ``positives[j]`` holds the distinct items of the target events from ``items[j]`` on, up
    to the horizon: an offer is worth showing when the shopper is about to want it soon, not
    only as the very next click (one repair-service view between a repair search and five
    TV views should not outweigh the TVs).
    """

    rows: list[dict[str, float]] = field(default_factory=list)
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


def _user_features(rows: Sequence[Mapping[str, float]], index: Mapping[str, int]) -> sp.csr_matrix:
    indptr, cols, vals = [0], [], []
    for row in rows:
        for name, weight in row.items():
            cols.append(index[name])
            vals.append(weight)
        indptr.append(len(cols))
    return sp.csr_matrix(
        (np.array(vals, dtype=np.float32), np.array(cols, dtype=np.int32), np.array(indptr)),
        shape=(len(rows), len(index)),
    )


CURVE_SAMPLE = 2000
"""Training contexts whose next item is ranked after each epoch to draw the training curve."""


def _sample_hit_rate(
    model: Any, user_x: sp.csr_matrix, item_x: sp.csr_matrix, targets: npt.NDArray[np.intp]
) -> float:
    """Share of sampled contexts whose next item is in the model's top 10 (training fit)."""
    users = np.asarray(user_x @ model.user_embeddings)
    items = np.asarray(item_x @ model.item_embeddings)
    scores = users @ items.T + np.asarray(item_x @ model.item_biases).ravel()
    target_scores = scores[np.arange(len(targets)), targets]
    better = (scores > target_scores[:, None]).sum(axis=1)
    return round(float((better < 10).mean()), 4)


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
    """Fit the propensity map on held-out contexts, scored exactly as serving scores them."""
    raws, recents, pos = [], [], []
    for row, items in zip(rows, positives, strict=True):
        known = [(feature_index[n], w) for n, w in row.items() if n in feature_index and w > 0]
        if not known:
            continue
        idx = np.array([i for i, _ in known])
        vals = np.array([w for _, w in known])
        vals = vals / vals.sum()
        user = vals @ feature_embeddings[idx]
        raw = (item_vectors @ user + item_biases).astype(np.float64)
        raw -= raw.mean()  # the user's bias is the same for every item: only margins count
        recent = relative_item_weights(row, item_index, len(raw))
        raws.append(raw)
        recents.append(recent)
        pos.append([item_index[i] for i in items if i in item_index])
    return fit_calibration(raws, recents, pos, seed=seed)


def train(
    events: Sequence[Event],
    catalog: Catalog,
    profiler: Profiler,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = False,
) -> Model:
    """Fit LightFM on the contexts of ``events`` and export a serving :class:`Model`."""
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
    fit_rows = [r for r, h in zip(contexts.rows, held, strict=True) if not h]
    fit_positives = [p for p, h in zip(contexts.positives, held, strict=True) if not h]
    fit_items = [i for i, h in zip(contexts.items, held, strict=True) if not h]
    # features only held-out users have would get untrained embeddings: leave them out
    feature_names = sorted({name for row in fit_rows for name in row})
    feature_index = {name: i for i, name in enumerate(feature_names)}
    user_x = _user_features(fit_rows, feature_index)
    item_x, item_feature_names = _item_features(item_ids, catalog)
    pos_rows = [j for j, items in enumerate(fit_positives) for _ in items]
    pos_cols = [item_index[i] for items in fit_positives for i in items]
    interactions = sp.coo_matrix(
        (np.ones(len(pos_rows), dtype=np.float32), (pos_rows, pos_cols)),
        shape=(len(fit_rows), len(item_ids)),
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
        len(fit_rows), size=min(CURVE_SAMPLE, len(fit_rows)), replace=False
    )
    sample_targets = np.array([item_index[fit_items[j]] for j in sample])
    curve: list[dict[str, float]] = []
    for epoch in tqdm(range(config.epochs), desc="training", unit="epoch", disable=not progress):
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
        calibration = _calibrate(
            [r for r, h in zip(contexts.rows, held, strict=True) if h],
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
