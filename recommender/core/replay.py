"""Events into profiles: the single path from an event to a profile change.

The stream worker calls :meth:`Profiler.apply` on live Kafka messages; training and evaluation
call it on histories. Same function, same features, same decay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from recommender.core.catalog import Catalog
from recommender.core.events import ITEM_EVENTS, Event
from recommender.core.features import FeatureConfig, event_features
from recommender.core.profile import Profile, ProfileParams, apply_event


@dataclass
class Profiler:
    """Applies events to profiles with one catalog, feature config and decay."""

    catalog: Catalog = field(default_factory=Catalog)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    params: ProfileParams = field(default_factory=ProfileParams)

    def apply(
        self, profile: Profile, event: Event, position: tuple[int, int] | None = None
    ) -> bool:
        """Apply ``event`` (which must carry ``ts``); False when fenced as already applied."""
        if event.ts is None:
            raise ValueError("event has no ts; set it from the Kafka record time first")
        return apply_event(
            profile,
            event_features(event, self.catalog.get, self.features),
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
