"""``scoring.standardised`` gives numpy's ``mean``/``std`` z-scores bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.core.scoring import standardised


def _numpy_way(raw: np.ndarray) -> np.ndarray:
    scores = raw.astype(np.float64)
    scores -= scores.mean()
    spread = scores.std()
    if spread > 0:
        scores /= spread
    return scores


@pytest.mark.parametrize("seed", range(30))
def test_standardised_equals_mean_and_std(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 8, 9, 127, 128, 129, 448, 1000, 4099):
        raw = (rng.normal(size=n) * rng.choice([1e-3, 1.0, 1e3]) + rng.normal()).astype(np.float32)
        got, want = standardised(raw), _numpy_way(raw)
        assert got.dtype == want.dtype
        assert got.tobytes() == want.tobytes(), n
    constant = np.full(5, 3.0, dtype=np.float32)
    assert standardised(constant).tobytes() == _numpy_way(constant).tobytes()
    assert len(standardised(np.zeros(0, dtype=np.float32))) == 0
