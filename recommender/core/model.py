"""The trained model as the server sees it: feature embeddings and item vectors, no LightFM.

A live profile ``w`` (feature -> weight, L1-normalised) is a LightFM user: its vector is
``w @ feature_embeddings`` and its bias ``w @ feature_biases``; an item's score is
``user_vector . item_vectors[i] + user_bias + item_biases[i]``. Scoring every item is one small
matrix-vector product, and each term ``w_f * (E[f] . Q[i])`` is the contribution of one profile
feature to one item's score, which is what reasons are built from.

Artifact layout (a directory)::

    meta.json   format, version, vocabularies, popularity, configs, training summary
    model.npz   feature_embeddings, feature_biases, item_vectors, item_biases (float32)
    hybrid.npz  optional: the hybrid ranker's tables (:mod:`recommender.core.hybrid`), named
                by ``meta.json``'s ``hybrid`` entry; a model without that entry has none
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recommender.core.calibration import Calibration
from recommender.core.errors import ModelError
from recommender.core.features import FeatureConfig
from recommender.core.native import native as native_function
from recommender.core.profile import ProfileParams

if TYPE_CHECKING:  # the hybrid module scores with Model: imported where it is used
    from recommender.core.hybrid import HybridTables

FORMAT = "zmot-model/1"
F32 = npt.NDArray[np.float32]
UserRow = tuple[npt.NDArray[np.intp], F32]
"""A profile as the model reads it: known feature indices and their L1-normalised weights."""


@dataclass
class Model:
    """Embeddings of profile features and vectors of items, with their vocabularies."""

    version: str
    feature_names: list[str]
    item_ids: list[str]
    feature_embeddings: F32
    feature_biases: F32
    item_vectors: F32
    item_biases: F32
    popular: list[str]
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    profile_params: ProfileParams = field(default_factory=ProfileParams)
    info: dict[str, Any] = field(default_factory=dict)
    recent_boost: float = 0.0
    """Blend weight of the profile's own items (see :class:`recommender.core.scoring.ItemScorer`),
    chosen with the model (e.g. by `zmot tune`) and used by the API unless overridden."""
    calibration: Calibration = field(default_factory=Calibration)
    """Model score -> probability of the item being among the next target events
    (:mod:`recommender.offline.propensity`); fitted on held-out contexts if enough."""
    complements: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{bought category: {next category: share}}`` learned from purchase sequences."""
    hybrid: HybridTables | None = None
    """The hybrid ranker's tables (``zmot train --hybrid``); not used by serving yet."""

    def __post_init__(self) -> None:
        self.feature_index = {name: i for i, name in enumerate(self.feature_names)}
        self.item_index = {item: i for i, item in enumerate(self.item_ids)}
        self.item_mean: F32 = (
            self.item_vectors.mean(axis=0) if len(self.item_ids) else self.item_vectors.sum(axis=0)
        )
        self.item_centred: F32 = self.item_vectors - self.item_mean
        """Each item's vector minus the mean item's (what :meth:`contributions` reads)."""
        self._row_embeddings: tuple[UserRow, F32, list[int]] | None = None
        n_f, n_i = len(self.feature_names), len(self.item_ids)
        if self.feature_embeddings.shape[0] != n_f or self.feature_biases.shape != (n_f,):
            raise ModelError("feature arrays do not match the feature vocabulary")
        if self.item_vectors.shape[0] != n_i or self.item_biases.shape != (n_i,):
            raise ModelError("item arrays do not match the item vocabulary")
        if self.feature_embeddings.shape[1] != self.item_vectors.shape[1]:
            raise ModelError("feature and item embeddings differ in size")

    # --- scoring --------------------------------------------------------------------------
    def user_row(self, weights: Mapping[str, float]) -> UserRow | None:
        """Indices and L1-normalised weights of the known features, or None if none is known.

        ``zmot_native.user_row`` computes it when the native module serves (one call instead
        of a comprehension, a ``zip``, two arrays built from tuples and three numpy calls;
        numpy's pairwise sum, the same floats), else :meth:`user_row_python`, the reference."""
        native = native_function("user_row")
        if native is None or type(weights) is not dict:
            return self.user_row_python(weights)
        found: UserRow | None = native(weights, self.feature_index)
        if found is None:  # a weight that is not a float: Python compares it
            return self.user_row_python(weights)
        return found if len(found[0]) else None

    def user_row_python(self, weights: Mapping[str, float]) -> UserRow | None:
        """:meth:`user_row` in Python and numpy alone (the reference of the native path)."""
        index = self.feature_index
        known = [(i, w) for n, w in weights.items() if w > 0.0 and (i := index.get(n)) is not None]
        if not known:
            return None
        idx_list, weight_list = zip(*known, strict=True)
        idx = np.array(idx_list, dtype=np.intp)
        vals = np.array(weight_list, dtype=np.float64)
        return idx, (vals / vals.sum()).astype(np.float32)

    def scores(self, weights: Mapping[str, float]) -> F32 | None:
        """Score of every item for a profile, or None when no profile feature is known."""
        row = self.user_row(weights)
        return None if row is None else self.row_scores(row)

    def row_scores(self, row: UserRow) -> F32:
        """:meth:`scores` of a :meth:`user_row` (for a caller that keeps the row)."""
        idx, vals = row
        user_vec = vals @ self.feature_embeddings[idx]
        user_bias = float(vals @ self.feature_biases[idx])
        out: F32 = self.item_vectors @ user_vec + self.item_biases + np.float32(user_bias)
        return out

    def contributions(
        self,
        weights: Mapping[str, float],
        item: int,
        row: UserRow | None = None,
    ) -> list[tuple[str, float]]:
        """How much each profile feature lifts one item above the average item, largest first;
        only the features that lift it (positive terms).

        The term of feature ``f`` is ``w_f * E[f] . (Q[item] - mean(Q))``: the part of the score
        that this feature gives this item and not every item alike (the feature's bias and the
        item's own popularity bias are the same for every feature, so they are left out).
        ``row``: the profile's :meth:`user_row` when the caller has it.
        """
        lifts, at = self.lifts(weights, item, row)
        names = self.feature_names
        return [(names[at[j]], -t) for t, j in lifts]

    def lifts(
        self,
        weights: Mapping[str, float],
        item: int,
        row: UserRow | None = None,
    ) -> tuple[list[tuple[float, int]], list[int]]:
        """:meth:`contributions` before naming the features: ``(-term, j)`` of the positive
        terms, largest first (ties in row order), and the row's feature indices (the feature of
        ``j`` is ``feature_names[at[j]]``)."""
        found = self.terms(weights, item, row)
        if found is None:
            return [], []
        terms = found[0].tolist()
        # largest first, ties in row order (a stable sort of the negated terms)
        return sorted([(-t, j) for j, t in enumerate(terms) if t > 0]), found[1]

    def terms(
        self,
        weights: Mapping[str, float],
        item: int,
        row: UserRow | None = None,
    ) -> tuple[F32, list[int]] | None:
        """Every term of :meth:`contributions` (one per feature of the row, in row order, also
        those that do not lift the item) and the row's feature indices; None without a row."""
        row = self.user_row(weights) if row is None else row
        if row is None:
            return None
        idx, vals = row
        held = self._row_embeddings
        if held is None or held[0] is not row:  # one gather per row (a request's offers)
            held = (row, self.feature_embeddings[idx], idx.tolist())
            self._row_embeddings = held
        terms: F32 = vals * (held[1] @ self.item_centred[item])
        return terms, held[2]

    # --- persistence ----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / "model.npz",
            feature_embeddings=self.feature_embeddings,
            feature_biases=self.feature_biases,
            item_vectors=self.item_vectors,
            item_biases=self.item_biases,
        )
        meta = {
            "format": FORMAT,
            "version": self.version,
            "feature_names": self.feature_names,
            "item_ids": self.item_ids,
            "popular": self.popular,
            **self.runtime_meta(),
            "info": self.info,
            "calibration": self.calibration.to_dict(),
            "complements": self.complements,
        }
        if self.hybrid is not None:
            meta["hybrid"] = self.hybrid.save(directory)
        tmp = directory / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(directory / "meta.json")

    def runtime_meta(self) -> dict[str, Any]:
        """The part of ``meta.json`` that the runtime follows
        (:func:`recommender.core.runtime.resolve`): feature config, profile math, blend, and
        whether the hybrid ranker keeps the purchase rule."""
        return {
            "feature_config": self.feature_config.to_dict(),
            "profile_params": {
                "half_life_s": self.profile_params.half_life_s,
                "top_n": self.profile_params.top_n,
                "purchase_memory": self.profile_params.purchase_memory,
                "touch_memory": self.profile_params.touch_memory,
            },
            "recent_boost": self.recent_boost,
            **(
                {
                    "hybrid": {
                        "offset": self.hybrid.offset,
                        "purchase_rule": self.hybrid.purchase_rule,
                    }
                }
                if self.hybrid is not None
                else {}
            ),
        }

    @classmethod
    def load(cls, directory: Path) -> Model:
        """Load an artifact written by :meth:`save`; ModelError says what is wrong."""
        meta_path, arrays_path = directory / "meta.json", directory / "model.npz"
        for path in (meta_path, arrays_path):
            if not path.is_file():
                raise ModelError(f"no model at {directory}: {path.name} missing (run `zmot train`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arrays = np.load(arrays_path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the model at {directory}: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ModelError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        hybrid = None
        if "hybrid" in meta:
            from recommender.core.hybrid import HybridTables

            entry = dict(meta["hybrid"])
            if HybridTables.reads(entry.get("features", [])):
                hybrid = HybridTables.load(directory, entry)
            else:  # an artifact of another zmot version: its ranker reads other signals
                logging.getLogger(__name__).warning(
                    "%s: the hybrid tables were fitted on other signals (%s); serving the "
                    "model without them (retrain with this version to use the hybrid ranker)",
                    directory,
                    entry.get("features"),
                )
        try:
            return cls(
                version=meta["version"],
                feature_names=list(meta["feature_names"]),
                item_ids=list(meta["item_ids"]),
                feature_embeddings=arrays["feature_embeddings"].astype(np.float32),
                feature_biases=arrays["feature_biases"].astype(np.float32),
                item_vectors=arrays["item_vectors"].astype(np.float32),
                item_biases=arrays["item_biases"].astype(np.float32),
                popular=list(meta["popular"]),
                feature_config=FeatureConfig.from_dict(meta["feature_config"]),
                profile_params=ProfileParams(**meta["profile_params"]),
                info=dict(meta.get("info", {})),
                recent_boost=float(meta.get("recent_boost", 0.0)),
                calibration=Calibration.from_dict(meta["calibration"])
                if "calibration" in meta
                else Calibration(),
                complements={
                    str(k): {str(c): float(v) for c, v in d.items()}
                    for k, d in dict(meta.get("complements", {})).items()
                },
                hybrid=hybrid,
            )
        except KeyError as exc:
            raise ModelError(f"{directory}: incomplete model, {exc} missing") from exc
