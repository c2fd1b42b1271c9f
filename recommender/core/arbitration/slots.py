"""Filling the slots: best first, diverse, each slot chosen by the placement's exploration
policy (:class:`~recommender.core.exploration.ExplorationPolicy`), which records its exact
probability."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from recommender.core.arbitration.types import Candidate, FloatArray, IntArray, OfferRequest
from recommender.core.placements import Placement

Chosen = tuple[Candidate, str, float]
"""A chosen candidate, the policy that chose it and the probability it had."""


def fill_slots(
    order: IntArray,
    items: IntArray,
    priority: FloatArray | None,
    candidate: Callable[[int], Candidate],
    k: int,
    placement: Placement,
    request: OfferRequest,
    item_category_id: IntArray,
    rng: random.Random,
) -> list[Chosen]:
    """Up to ``k`` candidates, never two for the same item or (unless the request allows it)
    the same category.

    ``order`` ranks the candidates (positions into ``items``/``priority``) best first;
    ``candidate`` builds the chosen ones; ``item_category_id`` is each item's category (-1:
    none)."""
    chosen: list[Chosen] = []
    ranked_items = items[order]
    ranked_categories = item_category_id[ranked_items]
    if priority is None:
        ranked_priority = np.zeros(len(order))
    else:  # as ``priority or 0.0``: -0.0 becomes 0.0
        ranked_priority = priority[order]
        ranked_priority = np.where(ranked_priority == 0.0, 0.0, ranked_priority)
    remaining = np.arange(len(order))
    while len(remaining) and len(chosen) < k:
        index, policy, probability = placement.exploration.choose(
            ranked_priority[remaining].tolist(), rng
        )
        pick = int(remaining[index])
        chosen.append((candidate(int(order[pick])), policy, probability))
        alive = ranked_items[remaining] != ranked_items[pick]
        category = ranked_categories[pick]
        if category >= 0 and not request.same_category:
            alive &= ranked_categories[remaining] != category
        remaining = remaining[alive]
    return chosen
