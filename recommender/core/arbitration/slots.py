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
    none). A placement that does not explore takes the greedy pass (:func:`_greedy`), the
    same choice as the slot-by-slot one (:func:`_by_slot`) without its numpy calls per slot."""
    ranked_items = items[order]
    ranked_categories = item_category_id[ranked_items]
    if placement.exploration.share == 0.0:
        return _greedy(
            order, ranked_items, ranked_categories, candidate, k, placement, request, rng
        )
    return _by_slot(
        order, ranked_items, ranked_categories, priority, candidate, k, placement, request, rng
    )


def _by_slot(
    order: IntArray,
    ranked_items: IntArray,
    ranked_categories: IntArray,
    priority: FloatArray | None,
    candidate: Callable[[int], Candidate],
    k: int,
    placement: Placement,
    request: OfferRequest,
    rng: random.Random,
) -> list[Chosen]:
    """:func:`fill_slots` one slot at a time, each chosen by the exploration policy."""
    chosen: list[Chosen] = []
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


def _greedy(
    order: IntArray,
    ranked_items: IntArray,
    ranked_categories: IntArray,
    candidate: Callable[[int], Candidate],
    k: int,
    placement: Placement,
    request: OfferRequest,
    rng: random.Random,
) -> list[Chosen]:
    """:func:`fill_slots` when the placement does not explore: every slot takes the best
    remaining candidate, so one pass over the ranking in Python picks them (the policy and
    probability of each slot are the exploration policy's, which draws nothing)."""
    chosen: list[Chosen] = []
    if k <= 0 or not len(order):
        return chosen
    _, policy, probability = placement.exploration.choose([0.0], rng)
    taken_items: set[int] = set()
    taken_categories: set[int] = set()
    ranked = zip(ranked_items.tolist(), ranked_categories.tolist(), strict=True)
    for pick, (item, category) in enumerate(ranked):
        if item in taken_items or category in taken_categories:
            continue
        chosen.append((candidate(int(order[pick])), policy, probability))
        if len(chosen) >= k:
            break
        taken_items.add(item)
        if category >= 0 and not request.same_category:
            taken_categories.add(category)
    return chosen
