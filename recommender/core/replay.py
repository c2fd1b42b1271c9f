"""Events into profiles: the single path from an event to a profile change.

The stream worker calls :meth:`Profiler.apply` on live Kafka messages; training and evaluation
call it on histories. Same function, same features, same decay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from recommender.core.catalog import Catalog
from recommender.core.events import ITEM_EVENTS, Event, EventType
from recommender.core.features import FeatureConfig, event_features
from recommender.core.profile import Profile, ProfileParams, apply_event

FEATURE_CACHE_SIZE = 1 << 16
"""Distinct (type, item, query) whose features a :class:`Profiler` remembers."""


@dataclass
class Profiler:
    """Applies events to profiles with one catalog, feature config and decay."""

    catalog: Catalog = field(default_factory=Catalog)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    params: ProfileParams = field(default_factory=ProfileParams)
    _features_of: Callable[[Event], Mapping[str, float]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # An event's features depend only on its type, item and query (with this catalog and
        # config): popular items and queries recur, so they are computed once. The mappings
        # are shared, read only by apply_event.
        @lru_cache(maxsize=FEATURE_CACHE_SIZE)
        def cached(kind: EventType, item_id: str | None, query: str | None) -> Mapping[str, float]:
            event = Event.model_construct(user_id="-", type=kind, item_id=item_id, query=query)
            return event_features(event, self.catalog.get, self.features)

        def features_of(event: Event) -> Mapping[str, float]:
            return cached(event.type, event.item_id, event.query)

        self._features_of = features_of

    def apply(
        self, profile: Profile, event: Event, position: tuple[int, int] | None = None
    ) -> bool:
        """Apply ``event`` (which must carry ``ts``); False when fenced as already applied."""
        if event.ts is None:
            raise ValueError("event has no ts; set it from the Kafka record time first")
        return apply_event(
            profile,
            self._features_of(event),
            event.ts,
            self.params,
            purchased_item=event.item_id if event.type == "purchase" else None,
            touched_item=event.item_id if event.type in ITEM_EVENTS else None,
            shown_offer=event.offer_id if event.type == "impression" else None,
            dismissed_offer=event.offer_id if event.type == "dismiss" else None,
            position=position,
            event_id=event.event_id,
        )

    def replay(self, events: Iterable[Event]) -> dict[str, Profile]:
        """Profiles of every user after ``events`` in the order given."""
        profiles: dict[str, Profile] = {}
        for event in events:
            self.apply(profiles.setdefault(event.user_id, Profile()), event)
        return profiles
