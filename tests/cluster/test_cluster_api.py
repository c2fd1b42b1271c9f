"""The end-to-end path and erasure, run again on a Redis Cluster of 3 masters: Kafka -> worker
-> profiles spread over the cluster -> API -> the right offer; an erased person stays erased
through a replay by a new consumer group (the erasure record and the profile delete of one
person share a slot, so the cluster keeps their order).

The same test functions as on one Redis, imported, with the session's cluster as ``stack``.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import (  # noqa: F401  (the API tests' fixtures)
    catalog,
    client,
    fake_arbiter,
    fake_engine,
    serve_app,
    store,
)
from tests.api.test_privacy import (  # noqa: F401
    test_erased_person_stays_erased_through_a_replay_by_a_new_consumer_group,
)
from tests.test_end_to_end import (  # noqa: F401
    test_searches_through_kafka_become_the_right_offers,
)

pytestmark = pytest.mark.integration
