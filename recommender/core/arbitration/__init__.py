"""Next-best-offer arbitration: rules first, then priority, then diversity and exploration.

For one request (a profile, a placement, a channel, maybe the item on the page):

1. **Applicability** (:mod:`.rules`): each offer of the catalog must be valid now
   (``starts_at``/``ends_at``), allowed in the placement and the channel, suit the user's
   journey stage, and its eligibility conditions must hold on the profile.
2. **Contact policy** (:mod:`.rules`): an offer shown ``max_impressions`` times to the user
   within the cap window (all channels together) is not shown; one dismissed ``dismiss_limit``
   times within the dismissal window is suppressed (counts from the profile's feedback history).
3. **Suitability** (:mod:`.rules`, :mod:`.table`): the bought item and its direct substitutes
   (same category) are not offered for ``substitute_window_s`` after a purchase; a category
   offer resolves to the user's best remaining item of that category.
4. **Arbitration** (:mod:`.priority`): ``priority = propensity x value x context_weight x
   lever``.
5. **Relevance floor**: offers whose propensity is below ``relevance_floor`` are dropped; if
   none is left the answer is empty (or, with ``floor_fallback``, popular offers flagged).
6. **Diversity and exploration** (:mod:`.slots`): slots are filled best first, never two offers
   for the same item or the same category (unless the request allows it), each slot by the
   placement's :class:`~recommender.core.exploration.ExplorationPolicy`.
7. **Explanations** (:mod:`.explain`): reasons, social proof, debug parts, the decision log.

Performance: offers and items are numpy arrays precomputed when the arbiter is built
(:mod:`.table`); candidates stay arrays until the slots are filled and only the chosen ones
become :class:`Candidate` objects. The result is exactly that of checking every rule on every
offer in turn.
"""

from recommender.core.arbitration.arbiter import Arbiter
from recommender.core.arbitration.types import (
    ArbitrationConfig,
    Candidate,
    Exposure,
    OfferRequest,
    RatingLike,
)

__all__ = [
    "Arbiter",
    "ArbitrationConfig",
    "Candidate",
    "Exposure",
    "OfferRequest",
    "RatingLike",
]
