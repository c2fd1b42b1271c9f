"""The worker's fence and at-least-once tests, run again on a Redis Cluster of 3 masters.

The same test functions as on one Redis (imported, so they cannot drift apart), with ``stack``
and ``isolated`` naming the session's cluster (``tests/cluster/conftest.py``): fenced profile
and counter writes in cluster pipelines, redelivered and overlapping batches, fence conflicts,
a replay from offset 0 and a rebalance between two worker processes.
"""

from __future__ import annotations

import pytest

from tests.feedback.test_feedback_store import (  # noqa: F401  (the fixture and tests, rerun here)
    stores,
    test_a_concurrent_counter_write_is_detected_and_recounted,
    test_redelivered_and_overlapping_batches_count_once,
)
from tests.stream.test_stream_batch import (  # noqa: F401
    store,
    test_batch_applies_events_per_user_in_order,
    test_batches_with_redeliveries_equal_offline_replay,
    test_fence_conflict_rereads_and_reapplies,
    test_fence_that_keeps_moving_fails_the_batch,
    test_redelivered_batch_changes_nothing,
)
from tests.stream.test_stream_worker import (  # noqa: F401
    _drop_profiles,
    test_rebalances_between_two_workers_apply_every_event_once,
    test_replay_from_offset_zero_changes_no_profile_and_matches_offline,
)

pytestmark = pytest.mark.integration
