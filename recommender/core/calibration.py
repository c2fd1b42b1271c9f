"""Propensity calibration as serving applies it: a logistic map from model margin to probability.

The model's raw score ranks items but is no probability; arbitration needs one (priority =
propensity x value x ...). Training fits the map (:mod:`recommender.offline.propensity`); the
model artifact carries it and serving only applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.core.native import native as native_function


@dataclass(frozen=True)
class Calibration:
    """``p = sigmoid(a * raw + c * recent + b)``; the default is a documented uncalibrated map."""

    a: float = 1.0
    b: float = -4.0
    c: float = 2.0
    fitted: bool = False
    n: int = 0

    def probability(
        self, raw: npt.NDArray[np.float64], recent: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        if raw.dtype != np.float64 or recent.dtype != np.float64:
            z = np.clip(self.a * raw + self.c * recent + self.b, -50.0, 50.0)
            mixed: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
            return mixed
        # The same operations as above, in place on one array (this runs on every item of
        # every request); up to the exp in one call when zmot_native serves (the same floats).
        native = native_function("calibration_exponent")
        if native is not None and raw.ndim == 1 and raw.shape == recent.shape:
            out: npt.NDArray[np.float64] = native(raw, recent, self.a, self.b, self.c)
        else:
            out = self._exponent(raw, recent)
        return _sigmoid_of_exponent(out)

    def probability_python(
        self, raw: npt.NDArray[np.float64], recent: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """:meth:`probability` in numpy alone (the reference of the native path)."""
        if raw.dtype != np.float64 or recent.dtype != np.float64:
            return self.probability(raw, recent)  # numpy alone on that path
        return _sigmoid_of_exponent(self._exponent(raw, recent))

    def _exponent(
        self, raw: npt.NDArray[np.float64], recent: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``-clip(a * raw + c * recent + b, -50, 50)`` in numpy, on one new array."""
        out: npt.NDArray[np.float64] = raw * self.a
        out += self.c * recent
        out += self.b
        np.maximum(out, -50.0, out=out)  # np.clip's values (NaN stays NaN), 2/3 the cost
        np.minimum(out, 50.0, out=out)
        np.negative(out, out=out)
        return out

    def to_dict(self) -> dict[str, float | bool | int]:
        return {"a": self.a, "b": self.b, "c": self.c, "fitted": self.fitted, "n": self.n}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Calibration:
        return cls(
            a=float(data["a"]),  # type: ignore[arg-type]  # written by to_dict
            b=float(data["b"]),  # type: ignore[arg-type]
            c=float(data["c"]),  # type: ignore[arg-type]
            fitted=bool(data.get("fitted", True)),
            n=int(data.get("n", 0)),  # type: ignore[call-overload]
        )


def _sigmoid_of_exponent(out: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``1 / (1 + exp(out))``, in place."""
    np.exp(out, out=out)
    out += 1.0
    np.divide(1.0, out, out=out)
    return out
