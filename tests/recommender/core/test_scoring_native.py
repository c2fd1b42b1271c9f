"""The plain scorer's numpy chains done by ``zmot_native`` give numpy's floats bit for bit:
``centred_scores`` (the centred raw scores and their standardised form, numpy's pairwise
sums included) against :func:`~recommender.core.scoring._centred` and ``_std``, and the
calibration's exponent against :meth:`Calibration.probability_python`, on arrays drawn to hit
the edges (constant scores, a zero spread, NaN, infinities, -0.0, tiny and huge values,
lengths on both sides of numpy's 8- and 128-item summing blocks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core import hybrid
from recommender.core.calibration import Calibration
from recommender.core.scoring import _centred, _std, centred_scores

needs_native = pytest.mark.skipif(
    getattr(hybrid.NATIVE, "centred_scores", None) is None,
    reason="zmot_native not built (test_native.py says so), or ZMOT_NATIVE=0",
)

f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
f32_finite = st.floats(-1e6, 1e6, width=32)
raws = st.one_of(
    st.lists(f32_finite, min_size=1, max_size=600),
    st.lists(f32, min_size=1, max_size=40),
    st.integers(1, 300).map(lambda n: [1.5] * n),
)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@needs_native
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=300, deadline=None)
@given(raws)
def test_centred_scores_are_numpys(values: list[float]) -> None:
    raw = np.array(values, dtype=np.float32)
    centred, standard = centred_scores(raw)
    assert standard is not None
    want = _centred(raw)
    _same(centred, want)
    spread = _std(want)
    _same(standard, want / spread if spread > 0 else want.copy())


@needs_native
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(allow_nan=True), st.floats(0, 1)), min_size=1, max_size=300),
    st.floats(-5, 5),
    st.floats(-10, 10),
    st.floats(-5, 5),
)
def test_the_calibration_is_numpys(
    pairs: list[tuple[float, float]], a: float, b: float, c: float
) -> None:
    raw = np.array([x for x, _ in pairs] + [-0.0, 1e308, -1e308])
    recent = np.array([r for _, r in pairs] + [0.0, 0.0, 1.0])
    cal = Calibration(a=a, b=b, c=c)
    _same(cal.probability(raw, recent), cal.probability_python(raw, recent))


def test_zmot_native_0_centres_in_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hybrid, "NATIVE", None)
    raw = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    centred, standard = centred_scores(raw)
    assert standard is None
    _same(centred, _centred(raw))
