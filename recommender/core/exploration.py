"""Exploration with exact choice probabilities, so decisions can be evaluated off-policy.

Each slot of a response is filled independently: with probability ``1 - share`` the best
remaining candidate (``greedy``); with probability ``share`` one drawn from the remaining
candidates (``explore``): uniformly (``epsilon``) or with probability proportional to
``exp(priority / max priority / temperature)`` (``softmax``). The probability recorded for a
slot is the exact chance that the logging policy put that offer there given the slots before
it: ``(1 - share) * [it is the best] + share * q(it)``. With ``share = 0`` every slot is greedy
with probability 1.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Method = Literal["epsilon", "softmax"]
GREEDY, EXPLORE = "greedy", "explore"


@dataclass(frozen=True)
class ExplorationPolicy:
    """How one placement explores: the share of slots and the draw."""

    share: float = 0.0
    method: Method = "epsilon"
    temperature: float = 0.5

    def draw_weights(self, priorities: Sequence[float]) -> list[float]:
        """The exploring draw's probability of each remaining candidate (sums to 1)."""
        n = len(priorities)
        if self.method == "epsilon" or n == 1:
            return [1.0 / n] * n
        top = max(priorities) or 1.0
        logits = [p / top / self.temperature for p in priorities]
        peak = max(logits)
        raw = [math.exp(v - peak) for v in logits]
        total = sum(raw)
        return [r / total for r in raw]

    def choose(self, priorities: Sequence[float], rng: random.Random) -> tuple[int, str, float]:
        """(index, policy, probability) of the candidate for one slot; ``priorities`` sorted
        best first, non-empty."""
        weights = self.draw_weights(priorities) if self.share > 0.0 else []
        if self.share > 0.0 and rng.random() < self.share:
            pick = rng.random()
            index = len(weights) - 1
            acc = 0.0
            for i, w in enumerate(weights):
                acc += w
                if pick < acc:
                    index = i
                    break
            policy = EXPLORE
        else:
            index, policy = 0, GREEDY
        greedy_part = (1.0 - self.share) if index == 0 else 0.0
        explore_part = self.share * weights[index] if weights else 0.0
        return index, policy, greedy_part + explore_part
