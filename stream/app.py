"""The faust application of the stream worker: raw bytes in, no tables, loopback web server.

The app only carries configuration; the agent is in :mod:`stream.agents`, the work it does in
:mod:`stream.batch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from recommender.adapters.kafka import kafka_auth
from recommender.core.settings import Settings
from stream.intake import BatchHandler, take_batches
from stream.offsets import AppliedOffsets, after_committed_seek


def datadir_for(settings: Settings) -> Path:
    """Where faust keeps its per-app data directory (one per consumer group)."""
    return Path(settings.state_dir) / "worker" / settings.consumer_group


def _credentials(settings: Settings) -> dict[str, Any]:
    """faust's ``broker_credentials`` (and TLS) from the same settings as every other client."""
    auth = kafka_auth(settings)
    if auth.protocol == "PLAINTEXT":
        return {}
    ssl_context = auth.options().get("ssl_context")
    if auth.protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(ssl_context)}
    credentials = faust.SASLCredentials(
        username=auth.username,
        password=auth.password,
        mechanism=auth.mechanism,
        ssl_context=ssl_context,
    )
    return {"broker_credentials": credentials}


class WorkerApp(faust.App):
    """faust's App whose consumer, once given :attr:`applied_offsets`, starts each assigned
    partition from Redis's applied offset when that is behind Kafka's (:mod:`stream.offsets`),
    and, once given :attr:`batch_intake` (topic, handler, batch size), hands that topic's
    fetches to the handler in batches (:mod:`stream.intake`)."""

    applied_offsets: AppliedOffsets | None = None
    batch_intake: tuple[str, BatchHandler, int] | None = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if self.applied_offsets is not None:
            after_committed_seek(consumer, self.applied_offsets)
        if self.batch_intake is not None:
            take_batches(consumer, *self.batch_intake)
        return consumer


def create_app(settings: Settings, *, web_enabled: bool = True) -> WorkerApp:
    """A faust app reading ``settings.events_topic`` as the group ``settings.consumer_group``.

    Keys and values stay raw bytes: the worker validates them itself so that a malformed message
    reaches the dead-letter topic byte for byte instead of failing inside faust's codecs.
    """
    datadir = datadir_for(settings)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return WorkerApp(
        settings.consumer_group,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        **_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        datadir=str(datadir),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        # Only for topics faust declares itself; `zmot infra` creates ours (replication 1).
        topic_replication_factor=1,
        # The assignor's leader topic is only needed for tables and global state.
        topic_disable_leader=True,
        # A new group reads the whole topic: profiles are rebuilt from the log.
        consumer_auto_offset_reset="earliest",
        # acks=all with a one-node broker costs nothing and is right on a cluster.
        producer_acks=-1,
        producer_linger=0.005,
        # faust's default (1,000,000) is below the broker's message.max.bytes (1,048,588), and a
        # dead letter is the original value plus headers: let the broker decide (a letter it
        # rejects is resent truncated, see stream.dead_letters).
        producer_max_request_size=1_048_588 + 4096,
        broker_commit_interval=1.0,
        # A worker killed with -9 holds its partitions until its session expires (faust's
        # default: 60 s of stalled stream); with a static instance id a restart takes them
        # back at once (docs: README, "Failures and recovery").
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 3),
        consumer_group_instance_id=settings.worker_instance_id,
        # faust's assignor checks that the assignment it gets back names its own URL; a static
        # member restarted with another web port gets its old assignment back unchanged, so
        # the URL follows the instance id, not the port.
        canonical_url=(
            f"http://{settings.worker_instance_id}.zmot-worker"
            if settings.worker_instance_id
            else None
        ),
        web_enabled=web_enabled,
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        # The web views other than metrics are not part of zmot's surface.
        web_graph_enabled=False,
        web_tables_enabled=False,
        web_router_enabled=False,
    )
