"""The plain (LightFM) serving path's faster arithmetic gives exactly the floats of the
straightforward code it replaced, frozen here: the user row, the blended item scores, the
propensities (the calibration) and so the arbitration's inputs, on random models and profiles
built to hit the edge cases (features unknown to the model, zero and negative weights, no
item feature, purchases inside and outside the exclusion window, ties, a constant score)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from recommender.core.calibration import Calibration
from recommender.core.features import item_feature, item_weights
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.scoring import ItemScorer, propensities, relative_item_weights

NOW = 1_770_000_000.0
DAY = 86_400.0


# --- the reference: the code before the rewrite, verbatim -----------------------------------


def ref_user_row(
    model: Model, weights: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray] | None:
    pairs = [
        (model.feature_index[n], w)
        for n, w in weights.items()
        if w > 0.0 and n in model.feature_index
    ]
    if not pairs:
        return None
    idx = np.fromiter((i for i, _ in pairs), dtype=np.intp, count=len(pairs))
    vals = np.fromiter((w for _, w in pairs), dtype=np.float64, count=len(pairs))
    return idx, (vals / vals.sum()).astype(np.float32)


def ref_seen(weights: Mapping[str, float], index: Mapping[str, int]) -> list[tuple[int, float]]:
    return [(index[item], w) for item, w in item_weights(weights) if item in index]


def ref_relative(weights: Mapping[str, float], index: Mapping[str, int], n: int) -> np.ndarray:
    recent = np.zeros(n)
    seen = ref_seen(weights, index)
    if seen:
        top = max(w for _, w in seen)
        for position, w in seen:
            recent[position] = w / top
    return recent


def ref_probability(cal: Calibration, raw: np.ndarray, recent: np.ndarray) -> np.ndarray:
    z = np.clip(cal.a * raw + cal.c * recent + cal.b, -50.0, 50.0)
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def ref_blend(
    model: Model,
    raw: np.ndarray,
    weights: Mapping[str, float],
    profile: Profile,
    now: float,
    exclusion_s: float,
    boost: float,
) -> np.ndarray:
    scores = raw.astype(np.float64)
    scores -= scores.mean()
    spread = scores.std()
    if spread > 0:
        scores /= spread
    if boost > 0.0:
        seen = ref_seen(weights, model.item_index)
        if seen:
            strongest = max(w for _, w in seen)
            for position, w in seen:
                scores[position] += boost * w / strongest
    for item, ts in profile.purchases.items():
        if now - ts < exclusion_s and item in model.item_index:
            scores[model.item_index[item]] = -np.inf
    return scores


def ref_propensities(model: Model, raw: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    recent = ref_relative(weights, model.item_index, len(model.item_ids))
    margin = raw.astype(np.float64)
    margin -= margin.mean()
    return ref_probability(model.calibration, margin, recent)


# --- random worlds ---------------------------------------------------------------------------


def random_model(rng: np.random.Generator, constant: bool = False) -> Model:
    n_items = int(rng.integers(1, 120))
    items = [f"i{j:03d}" for j in range(n_items)]
    features = [item_feature(i) for i in items] + ["cat:a", "cat:b", "q:x", "kind:view"]
    dim = int(rng.integers(1, 6))
    scale = 0.0 if constant else 1.0
    return Model(
        version="rand",
        feature_names=features,
        item_ids=items,
        feature_embeddings=(np.round(rng.normal(size=(len(features), dim)), 1) * scale).astype(
            np.float32
        ),
        feature_biases=np.round(rng.normal(size=len(features)), 1).astype(np.float32),
        item_vectors=(np.round(rng.normal(size=(n_items, dim)), 1) * scale).astype(np.float32),
        item_biases=(np.round(rng.normal(size=n_items), 1) * scale).astype(np.float32),
        popular=items[:5],
        calibration=Calibration(
            a=float(rng.normal() * 3), b=float(rng.normal() * 2), c=float(rng.normal()), fitted=True
        ),
    )


def random_weights(rng: np.random.Generator, model: Model) -> dict[str, float]:
    names = list(model.feature_names) + ["item:unknown", "cat:zzz", "q:unknown"]
    chosen = rng.choice(
        len(names), size=int(rng.integers(0, min(40, len(names)) + 1)), replace=False
    )
    values = np.round(rng.normal(size=len(chosen)), 1)  # zero and negative weights too...
    out = {names[j]: float(v) for j, v in zip(chosen, values, strict=True)}
    # ...but not for items: a profile's item weights are decayed counts, positive
    return {n: max(abs(v), 0.1) if n.startswith("item:") else v for n, v in out.items()}


def random_profile(rng: np.random.Generator, model: Model, weights: dict[str, float]) -> Profile:
    n_bought = int(rng.integers(0, min(4, len(model.item_ids)) + 1))
    bought = rng.choice(len(model.item_ids), size=n_bought, replace=False)
    purchases = {model.item_ids[j]: NOW - float(rng.uniform(0, 60)) * DAY for j in bought}
    if rng.random() < 0.3:
        purchases["not-a-model-item"] = NOW - DAY
    return Profile(weights=dict(weights), purchases=purchases, last_ts=NOW - 60.0)


@pytest.mark.parametrize("seed", range(60))
def test_plain_scoring_is_the_reference_to_the_last_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = random_model(rng, constant=seed % 10 == 9)
    exclusion_s = float(rng.choice([0.0, 7 * DAY, 30 * DAY]))
    boost = float(rng.choice([0.0, 0.5, 2.0]))
    scorer = ItemScorer(model, purchase_exclusion_s=exclusion_s, recent_boost=boost)
    for _ in range(20):
        weights = random_weights(rng, model)
        profile = random_profile(rng, model, weights)
        row, expected_row = model.user_row(weights), ref_user_row(model, weights)
        if expected_row is None:
            assert row is None
            continue
        assert row is not None
        assert row[0].dtype == expected_row[0].dtype and row[1].dtype == expected_row[1].dtype
        assert np.array_equal(row[0], expected_row[0])
        assert np.array_equal(row[1], expected_row[1])
        raw = model.row_scores(row)
        blended = ref_blend(model, raw, weights, profile, NOW, exclusion_s, boost)
        propensity = ref_propensities(model, raw, weights)
        got_blend, got_propensity = scorer.score(raw, weights, profile, NOW)
        np.testing.assert_array_equal(got_blend, blended)
        np.testing.assert_array_equal(got_propensity, propensity)
        np.testing.assert_array_equal(scorer.blend(raw, weights, profile, NOW), blended)
        np.testing.assert_array_equal(propensities(model, raw, weights), propensity)
        np.testing.assert_array_equal(
            relative_item_weights(weights, model.item_index, len(model.item_ids)),
            ref_relative(weights, model.item_index, len(model.item_ids)),
        )
        assert raw.dtype == np.float32  # the blend's input is left as it was
        np.testing.assert_array_equal(raw, model.row_scores(row))


@pytest.mark.parametrize("seed", range(20))
def test_calibration_is_the_formula_for_every_input_type(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cal = Calibration(a=float(rng.normal() * 5), b=float(rng.normal() * 3), c=float(rng.normal()))
    size = int(rng.integers(0, 300))
    raw = rng.normal(size=size) * float(rng.uniform(0.1, 60))  # some clipped at +-50
    recent = rng.uniform(size=size) * (rng.uniform(size=size) < 0.2)
    if size >= 3 and seed % 2:
        raw[:3] = [np.inf, -np.inf, np.nan]  # a purchase's -inf, and what clipping keeps
    for r, c in (
        (raw, recent),
        (raw.astype(np.float32), recent),
        (raw, recent.astype(np.float32)),
    ):
        got = cal.probability(r, c)  # type: ignore[arg-type]
        expected = ref_probability(cal, r, c)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    before = raw.copy()
    cal.probability(raw, recent)
    np.testing.assert_array_equal(raw, before)  # the input is not changed in place
