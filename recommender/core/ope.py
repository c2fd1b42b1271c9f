"""Off-policy evaluation: a candidate policy's reward rate from logged decisions (pure).

Each logged decision says which offer the logging policy showed and with which exact
probability (:mod:`recommender.core.exploration` records it), and whether it earned the reward
(a click, or a conversion). A candidate policy gives its own probability of showing that same
offer. With the importance weight ``w = candidate(a) / logged(a)``:

- IPS: ``mean(w * r)``, unbiased when the logging policy gave every action the candidate may
  take a probability > 0; 95% interval from the standard error of ``w * r``;
- self-normalised IPS (SNIPS): ``sum(w * r) / sum(w)``, slightly biased, far less variable;
  95% interval from the delta-method standard error
  ``sqrt(sum(w^2 (r - snips)^2)) / sum(w)``;
- effective sample size ``(sum w)^2 / sum(w^2)``: how many on-policy samples the estimate is
  worth; a small one says the candidate strays far from what was logged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recommender.core.errors import ConfigError

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Logged:
    """One logged decision: the offer shown, its logged probability and the reward."""

    offer_id: str
    probability: float
    reward: float


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class OpeResult:
    n: int
    logged_rate: float
    ips: Estimate
    snips: Estimate
    effective_sample_size: float
    unsupported: int
    """Logged decisions whose probability was 0 or less (left out: no weight exists)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "logged_rate": self.logged_rate,
            "ips": [self.ips.value, self.ips.low, self.ips.high],
            "snips": [self.snips.value, self.snips.low, self.snips.high],
            "effective_sample_size": self.effective_sample_size,
            "unsupported": self.unsupported,
        }


@dataclass(frozen=True)
class TablePolicy:
    """A candidate that shows each offer with a fixed probability, whatever the context (the
    ``--candidate`` YAML: ``{policy: {offer_id: probability}}``, the rest 0)."""

    probabilities: Mapping[str, float]

    def probability(self, offer_id: str) -> float:
        return float(self.probabilities.get(offer_id, 0.0))


def table_policy(data: Any, where: str = "candidate") -> TablePolicy:
    """A :class:`TablePolicy` from decoded YAML; probabilities in [0, 1] summing to at most 1."""
    raw = data.get("policy") if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected `policy: {{offer_id: probability, ...}}`")
    out: dict[str, float] = {}
    for offer, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"{where}: policy.{offer}: must be a probability in [0, 1]")
        out[str(offer)] = float(value)
    if sum(out.values()) > 1 + 1e-9:
        raise ConfigError(f"{where}: policy: probabilities sum to {sum(out.values()):g} > 1")
    return TablePolicy(out)


def evaluate(logged: Sequence[Logged], candidate: TablePolicy) -> OpeResult:
    """IPS and SNIPS estimates of the candidate's reward rate, with intervals and the ESS."""
    usable = [d for d in logged if d.probability > 0]
    n = len(usable)
    if n == 0:
        raise ConfigError("no logged decision with a probability > 0 to evaluate")
    weights = [candidate.probability(d.offer_id) / d.probability for d in usable]
    rewards = [d.reward for d in usable]
    terms = [w * r for w, r in zip(weights, rewards, strict=True)]
    ips = sum(terms) / n
    var = sum((t - ips) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    half = Z95 * math.sqrt(var / n)
    total_w = sum(weights)
    sum_sq = sum(w * w for w in weights)
    if total_w > 0:
        snips = sum(terms) / total_w
        se = math.sqrt(sum(w * w * (r - snips) ** 2 for w, r in zip(weights, rewards, strict=True)))
        s_half = Z95 * se / total_w
        ess = total_w * total_w / sum_sq
    else:  # the candidate never shows what was logged: nothing to learn from these logs
        snips, s_half, ess = 0.0, math.inf, 0.0
    return OpeResult(
        n=n,
        logged_rate=sum(rewards) / n,
        ips=Estimate(ips, ips - half, ips + half),
        snips=Estimate(snips, snips - s_half, snips + s_half),
        effective_sample_size=ess,
        unsupported=len(logged) - n,
    )
