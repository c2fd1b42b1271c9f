"""A tiny model artifact for registry and lifecycle tests (two features, two items)."""

from __future__ import annotations

import numpy as np

from recommender.core.model import Model
from recommender.core.profile import ProfileParams


def tiny(version: str, half_life_s: float = 72 * 3600.0) -> Model:
    """A two-by-two model named ``version`` with that profile half-life."""
    return Model(
        version=version,
        feature_names=["q:tv", "q:boots"],
        item_ids=["tv-1", "boots-1"],
        feature_embeddings=np.eye(2, dtype=np.float32),
        feature_biases=np.zeros(2, dtype=np.float32),
        item_vectors=np.eye(2, dtype=np.float32),
        item_biases=np.zeros(2, dtype=np.float32),
        popular=["tv-1", "boots-1"],
        profile_params=ProfileParams(half_life_s=half_life_s),
        info={"n_events": 12},
    )
