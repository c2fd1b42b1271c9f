"""The retraining gate: a candidate model ships only if it is not worse than the served one.

Both models rank the same fresh time split: the history before the split time is their
profiles' past, the events after it are the targets (:func:`recommender.offline.evaluation.
evaluate`, the ``live`` method, i.e. what the API serves, each model with its own profile
math). The candidate is trained on the part before the split only, so the events it is judged
on are new to it; the served model may have seen some of them (it was trained earlier, perhaps
on data reaching into the split), which can only favour it: the gate errs towards keeping
what runs. The candidate passes when its HR@k is at least the served model's minus
``max_drop`` (``ZMOT_RETRAIN_MAX_DROP``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from recommender.core.arbitration.types import DAY
from recommender.core.catalog import Catalog
from recommender.core.events import Event
from recommender.core.model import Model
from recommender.core.replay import Profiler
from recommender.core.runtime import purchase_exclusion_days
from recommender.offline.evaluation import evaluate

METHOD = "live"


@dataclass(frozen=True)
class GateResult:
    """Both models' HR@k on the split, and the decision."""

    k: int
    candidate: float
    current: float
    max_drop: float
    n_predictions: int

    @property
    def passed(self) -> bool:
        return self.candidate >= self.current - self.max_drop

    def describe(self) -> str:
        verdict = "passes" if self.passed else "REFUSED"
        return (
            f"gate {verdict}: HR@{self.k} candidate {self.candidate:.4f} vs current "
            f"{self.current:.4f} on {self.n_predictions} fresh predictions (allowed drop "
            f"{self.max_drop:g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def hit_rate(
    model: Model,
    catalog: Catalog,
    train: Sequence[Event],
    test: Sequence[Event],
    *,
    k: int,
    purchase_exclusion_s: float | None,
) -> tuple[float, int]:
    """HR@k of what the API would serve with ``model`` on the split; (rate, predictions).
    ``purchase_exclusion_s`` None: the model's own (``ZMOT_PURCHASE_EXCLUSION_DAYS`` unset)."""
    if purchase_exclusion_s is None:
        purchase_exclusion_s = purchase_exclusion_days(model.runtime_meta(), hybrid=True) * DAY
    profiler = Profiler(catalog, model.feature_config, model.profile_params)
    result = evaluate(
        model,
        catalog,
        profiler,
        train,
        test,
        ks=(k,),
        recent_boost=model.recent_boost,
        purchase_exclusion_s=purchase_exclusion_s,
    )
    return result.method_metrics(METHOD)[f"hr@{k}"], result.n_predictions


def quality_gate(
    candidate: Model,
    current: Model,
    catalog: Catalog,
    train: Sequence[Event],
    test: Sequence[Event],
    *,
    k: int = 10,
    max_drop: float = 0.0,
    purchase_exclusion_s: float | None = None,
) -> GateResult:
    """Rank the split with both models; see the module doc. Each keeps its own purchase rule
    unless ``purchase_exclusion_s`` fixes one for both."""
    new, n = hit_rate(
        candidate, catalog, train, test, k=k, purchase_exclusion_s=purchase_exclusion_s
    )
    old, _ = hit_rate(current, catalog, train, test, k=k, purchase_exclusion_s=purchase_exclusion_s)
    return GateResult(k, new, old, max_drop, n)
