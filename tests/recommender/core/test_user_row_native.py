"""``Model.user_row`` through ``zmot_native.user_row`` gives what the Python reference
(:meth:`~recommender.core.model.Model.user_row_python`) gives, bit for bit: the same feature
indices in the same order and the same float32 weights (numpy's pairwise sum, then the
division and the rounding), for profiles drawn to hit the edges: unknown names, weights of
0, negative, NaN or infinite, tiny and huge weights, rows longer than numpy's 128-item
summing block."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core import hybrid
from recommender.core.model import Model

needs_native = pytest.mark.skipif(
    getattr(hybrid.NATIVE, "user_row", None) is None,
    reason="zmot_native not built (test_native.py says so), or ZMOT_NATIVE=0",
)

NAMES = [f"f{i}" for i in range(400)]


def _model() -> Model:
    rng = np.random.default_rng(1)
    n_f, n_i, dim = len(NAMES), 5, 4
    return Model(
        version="test",
        popular=[],
        feature_names=NAMES,
        item_ids=[f"i{i}" for i in range(n_i)],
        feature_embeddings=rng.normal(size=(n_f, dim)).astype(np.float32),
        feature_biases=rng.normal(size=n_f).astype(np.float32),
        item_vectors=rng.normal(size=(n_i, dim)).astype(np.float32),
        item_biases=rng.normal(size=n_i).astype(np.float32),
    )


MODEL = _model()

weights_st = st.one_of(
    st.floats(min_value=1e-300, max_value=1e300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1.0, 5e-324, math.inf, math.nan]),
)
profiles = st.dictionaries(
    st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), weights_st, max_size=300
)


def _same(a: tuple[np.ndarray, np.ndarray] | None, b: tuple[np.ndarray, np.ndarray] | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        assert x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@needs_native
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@settings(max_examples=400, deadline=None)
@given(profiles)
def test_the_native_row_is_the_python_row(weights: dict[str, float]) -> None:
    _same(MODEL.user_row(weights), MODEL.user_row_python(weights))


@needs_native
@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=400))
def test_long_rows_sum_as_numpy_sums(values: list[float]) -> None:
    weights = dict(zip(NAMES, values, strict=False))
    _same(MODEL.user_row(weights), MODEL.user_row_python(weights))


def test_weights_that_are_not_floats_are_read_in_python() -> None:
    weights = {"f1": 1, "f2": 0.5, "f3": True, "unknown": 2.0}
    assert MODEL.user_row(weights) is not None
    _same(MODEL.user_row(weights), MODEL.user_row_python(weights))
    assert MODEL.user_row({"f1": np.float64(0.5)}) is not None


def test_no_known_feature_is_no_row() -> None:
    assert MODEL.user_row({}) is None
    assert MODEL.user_row({"unknown": 1.0, "f1": 0.0, "f2": -1.0}) is None


def test_zmot_native_0_serves_the_python_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hybrid, "NATIVE", None)
    weights = {"f1": 0.25, "f7": 0.75}
    _same(MODEL.user_row(weights), MODEL.user_row_python(weights))
