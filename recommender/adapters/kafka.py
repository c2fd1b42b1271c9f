"""Kafka at the edges: the producer that the API and ``zmot replay`` share (key = user_id, value =
event JSON), the reads behind consumer lag (offsets and the oldest unprocessed record), and
topic administration (create topics, describe the cluster) for ``zmot infra`` and the tests."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from recommender.core.decision_log import encode_record
from recommender.core.errors import ConfigError, InfraError, InvalidEventError
from recommender.core.events import Event, parse_event
from recommender.core.ops import PartitionOffsets, lag_document
from recommender.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaAuth:
    """How every Kafka client of zmot authenticates: security protocol, SASL user and TLS.

    One value built from the settings (:func:`kafka_auth`) and handed to producer, consumers and
    admin clients alike; the password is left out of ``repr`` so it never reaches a log line.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-256"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None

    def options(self) -> dict[str, Any]:
        """The aiokafka client arguments."""
        opts: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL_"):
            opts.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            opts["ssl_context"] = create_ssl_context(cafile=self.cafile)
        return opts


PLAINTEXT = KafkaAuth()


def kafka_auth(settings: Settings) -> KafkaAuth:
    """The :class:`KafkaAuth` of the ``ZMOT_KAFKA_*`` settings."""
    password = settings.kafka_sasl_password
    return KafkaAuth(
        protocol=settings.kafka_security_protocol,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
    )


class EventProducer:
    """Produces validated events so that one user's events stay ordered in one partition."""

    def __init__(
        self, bootstrap: str, topic: str, *, linger_ms: int = 5, auth: KafkaAuth = PLAINTEXT
    ) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            **auth.options(),
            acks="all",
            linger_ms=linger_ms,
            enable_idempotence=True,
            request_timeout_ms=15000,
        )
        self._bootstrap = bootstrap

    async def start(self) -> None:
        """Connect; a wrong bootstrap address fails here with a clear message."""
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise ConfigError(
                f"Kafka is not reachable at {self._bootstrap} ({exc}); check ZMOT_KAFKA_BOOTSTRAP"
            ) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_raw(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[Any]:
        """Queue one message for ``topic`` (no key: the producer picks a partition); the
        future of the broker's acknowledgement."""
        future: asyncio.Future[Any] = await self._producer.send(topic, value, key=key)
        return future

    async def send_many(self, events: Sequence[Event]) -> None:
        """Produce all events and wait until the broker acknowledged every one."""
        futures = [
            await self._producer.send(self.topic, e.to_json(), key=e.user_id.encode())
            for e in events
        ]
        await asyncio.gather(*futures)

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def topic_partitions(consumer: Any, topic: str) -> list[Any]:
    """The ``TopicPartition``s of ``topic`` in partition order ([] when it does not exist)."""
    from aiokafka import TopicPartition

    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()  # topic may be new to this client
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def group_lag(
    bootstrap: str, group: str, topic: str, *, auth: KafkaAuth = PLAINTEXT
) -> dict[int, tuple[int, int | None]]:
    """Per partition of ``topic``: (end offset, offset committed by ``group`` or None).

    Read from the broker, not reported by the worker, so a dead worker shows growing lag.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth.options())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **auth.options()
    )
    await admin.start()
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        committed = await committed_offsets(admin, group, tps)
        out: dict[int, tuple[int, int | None]] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            out[tp.partition] = (ends[tp], offset)
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def committed_offsets(admin: Any, group: str, tps: list[Any] | None = None) -> dict[Any, Any]:
    """The group's committed offsets, waiting out a coordinator that is still loading.

    A fresh broker creates ``__consumer_offsets`` on the first group request, and until its
    coordinator is up the broker answers "not available": that is a wait, not an error.
    """
    from aiokafka.errors import (
        CoordinatorLoadInProgressError,
        GroupCoordinatorNotAvailableError,
        NotCoordinatorForGroupError,
    )

    transient = (
        GroupCoordinatorNotAvailableError,
        CoordinatorLoadInProgressError,
        NotCoordinatorForGroupError,
    )
    for attempt in range(60):
        try:
            result: dict[Any, Any] = await admin.list_consumer_group_offsets(group, partitions=tps)
            return result
        except transient:
            if attempt == 59:
                raise
            await asyncio.sleep(0.5)
    return {}


def total_lag(lag: dict[int, tuple[int, int | None]]) -> int:
    """Messages not yet committed; a partition never committed counts its whole log."""
    return sum(end - (committed or 0) for end, committed in lag.values())


OLDEST_RECORD_TIMEOUT_S = 2.0
"""Longest wait for the first unprocessed records; a partition not read by then has no age."""


async def read_partition_offsets(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    timeout_s: float = OLDEST_RECORD_TIMEOUT_S,
    auth: KafkaAuth = PLAINTEXT,
) -> dict[int, PartitionOffsets]:
    """Per partition of ``topic``: end, committed (by ``group``), beginning offsets and the
    record timestamp of the oldest message ``group`` has not processed.

    The timestamp comes from reading that one record (a consumer without a group, so nothing
    is committed): the lag in seconds is then what Kafka says, not what a worker reports.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth.options())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **auth.options(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 * 1024,  # one record per partition is all we need
    )
    try:
        await admin.start()
        await consumer.start()
        tps = await topic_partitions(consumer, topic)
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
        committed = await committed_offsets(admin, group, tps)
        out: dict[int, PartitionOffsets] = {}
        starts: dict[Any, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            out[tp.partition] = PartitionOffsets(ends[tp], offset, beginnings[tp])
            start = max(offset if offset is not None else beginnings[tp], beginnings[tp])
            if start < ends[tp]:
                starts[tp] = start
        for tp, ts_ms in (await _first_timestamps(consumer, starts, timeout_s)).items():
            old = out[tp.partition]
            out[tp.partition] = PartitionOffsets(old.end, old.committed, old.beginning, ts_ms / 1e3)
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def _first_timestamps(
    consumer: Any, starts: dict[Any, int], timeout_s: float
) -> dict[Any, int]:
    """Record timestamp (ms) of the first record at or after each start offset."""
    if not starts:
        return {}
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    found: dict[Any, int] = {}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(found) < len(starts):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        waiting = [tp for tp in starts if tp not in found]
        batch = await consumer.getmany(*waiting, timeout_ms=int(left * 1000))
        for tp, records in batch.items():
            if records and tp not in found:
                found[tp] = records[0].timestamp
    return found


async def read_lag(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    now: float | None = None,
    auth: KafkaAuth = PLAINTEXT,
) -> dict[str, Any]:
    """The lag document of ``group`` on ``topic`` (:func:`recommender.core.ops.lag_document`)."""
    import time

    offsets = await read_partition_offsets(bootstrap, group, topic, auth=auth)
    return lag_document(group, topic, offsets, time.time() if now is None else now)


async def topic_message_count(bootstrap: str, topic: str, *, auth: KafkaAuth = PLAINTEXT) -> int:
    """Messages now readable in ``topic`` (end minus beginning offsets); 0 if it does not exist."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **auth.options()
    )
    try:
        await consumer.start()
        tps = await topic_partitions(consumer, topic)
        if not tps:
            return 0
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - beginnings[tp] for tp in tps)
    finally:
        await consumer.stop()


async def read_topic_values(
    bootstrap: str,
    topic: str,
    *,
    since: float | None = None,
    auth: KafkaAuth = PLAINTEXT,
) -> list[tuple[str, bytes, float]]:
    """Every record of ``topic`` from its beginning (or from the first record at or after the
    epoch time ``since``) up to its end offsets as of now: (``topic/partition/offset``, value,
    record time in epoch seconds), partition by partition in offset order.

    Reads without a consumer group, so nothing is committed and the worker is not disturbed.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **auth.options()
    )
    out: list[tuple[str, bytes, float]] = []
    try:
        await consumer.start()
        tps = await topic_partitions(consumer, topic)
        if not tps:
            raise ConfigError(f"topic {topic} not found at {bootstrap}")
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if since is not None:
            found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        todo = [tp for tp in tps if starts[tp] < ends[tp]]
        consumer.assign(todo)
        for tp in todo:
            consumer.seek(tp, starts[tp])
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        where = f"{topic}/{tp.partition}/{record.offset}"
                        out.append((where, record.value or b"", record.timestamp / 1e3))
            todo = [tp for tp in todo if await consumer.position(tp) < ends[tp]]
    finally:
        await consumer.stop()
    return out


async def read_topic_events(
    bootstrap: str,
    topic: str,
    *,
    since: float | None = None,
    auth: KafkaAuth = PLAINTEXT,
) -> tuple[list[Event], list[str]]:
    """Every event in ``topic`` (:func:`read_topic_values`); the events (``ts`` defaulting to
    the record time, as the worker sets it) and a reason per message that breaks the contract.
    """
    events: list[Event] = []
    bad: list[str] = []
    for where, value, record_ts in await read_topic_values(
        bootstrap, topic, since=since, auth=auth
    ):
        try:
            event = parse_event(value)
        except InvalidEventError as exc:
            bad.append(f"{where}: {exc}")
            continue
        events.append(event if event.ts is not None else event.with_ts(record_ts))
    return events, bad


DECISION_LINGER_MS = 5.0
"""Default gathering delay of the decision log: the answers of this many milliseconds share a
record (see :class:`DecisionLog`)."""

MAX_RECORD_ENTRIES = 500
"""Most decisions in one record of the decision log."""

MAX_RECORD_BYTES = 256 * 1024
"""Most bytes of one decision-log record (several decisions; one larger decision goes alone),
well under Kafka's default ``message.max.bytes`` (1 MiB) and the producer's request size."""


class DecisionLog:
    """Writes decisions to ``ZMOT_DECISIONS_TOPIC`` on the API's producer, in the background:
    :meth:`write` only appends to a buffer, and one task, woken by the first entry, waits
    ``linger_ms`` for more answers, then encodes what it holds and sends it as few records as
    possible (JSON lines, :func:`~recommender.core.decision_log.encode_record`; at most
    :data:`MAX_RECORD_ENTRIES` entries and :data:`MAX_RECORD_BYTES` bytes each, no key: a
    record mixes users, so the producer spreads records over the partitions). An answer never
    waits for the broker. Entries that cannot be sent (broker down or failing, more than
    :attr:`max_buffer` waiting) are counted in ``on_error``, not retried; :meth:`drain` sends
    everything buffered (at shutdown).

    One record per answer cost the API 66-86 us of CPU per answer at 1,000 answers/s (the
    producer's per-message path and a task wake-up each); a record per few milliseconds shares
    that among the answers of those milliseconds (BENCHMARKS.md)."""

    def __init__(
        self,
        producer: EventProducer,
        topic: str,
        on_error: Callable[[int], None],
        max_buffer: int = 10_000,
        *,
        linger_ms: float = DECISION_LINGER_MS,
        max_record_entries: int = MAX_RECORD_ENTRIES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        if max_record_entries < 1 or max_record_bytes < 1 or linger_ms < 0:
            raise ConfigError(
                "the decision log needs max_record_entries >= 1, max_record_bytes >= 1 and "
                f"linger_ms >= 0 (got {max_record_entries}, {max_record_bytes}, {linger_ms})"
            )
        self.producer = producer
        self.topic = topic
        self.on_error = on_error
        self.max_buffer = max_buffer
        self.linger_s = linger_ms / 1000.0
        self.max_record_entries = max_record_entries
        self.max_record_bytes = max_record_bytes
        self._buffer: list[Any] = []
        self._flusher: asyncio.Task[None] | None = None
        self._draining = False

    def write(self, entries: Sequence[Any]) -> None:
        """Queue ``entries`` (objects with ``to_json() -> bytes``, one line of JSON each)."""
        if not entries:
            return
        if len(self._buffer) + len(entries) > self.max_buffer:
            self.on_error(len(entries))
            return
        self._buffer.extend(entries)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    def records(self, entries: Sequence[Any]) -> list[tuple[bytes, int]]:
        """The records (value, number of entries) that carry ``entries`` in order: JSON lines,
        each within :attr:`max_record_entries` and :attr:`max_record_bytes` (an entry larger
        than that alone is a record of its own)."""
        out: list[tuple[bytes, int]] = []
        lines: list[bytes] = []
        size = 0
        for entry in entries:
            line = entry.to_json()
            if lines and (
                len(lines) >= self.max_record_entries
                or size + 1 + len(line) > self.max_record_bytes
            ):
                out.append((encode_record(lines), len(lines)))
                lines, size = [], 0
            size += len(line) + (1 if lines else 0)
            lines.append(line)
        if lines:
            out.append((encode_record(lines), len(lines)))
        return out

    async def _flush(self) -> None:
        while self._buffer:
            if self.linger_s > 0 and not self._draining:
                await asyncio.sleep(self.linger_s)  # let the next answers join this record
            batch, self._buffer = self._buffer, []
            failed = 0
            sent: list[tuple[asyncio.Future[Any], int]] = []
            try:
                records = self.records(batch)
            except Exception as exc:  # noqa: BLE001 - a lost log line must never surface
                log.warning("%d decisions not logged to %s: %r", len(batch), self.topic, exc)
                self.on_error(len(batch))
                continue
            for value, count in records:
                try:
                    sent.append((await self.producer.send_raw(self.topic, value, None), count))
                except Exception as exc:  # noqa: BLE001
                    log.warning("%d decisions not logged to %s: %r", count, self.topic, exc)
                    failed += count
            results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
            failed += sum(
                count
                for (_, count), result in zip(sent, results, strict=True)
                if isinstance(result, BaseException)
            )
            if failed:
                self.on_error(failed)

    async def drain(self) -> None:
        """Send everything buffered without lingering and wait for the broker's answers (at
        shutdown, and in tests)."""
        self._draining = True
        try:
            while self._flusher is not None and not self._flusher.done():
                await asyncio.gather(self._flusher, return_exceptions=True)
        finally:
            self._draining = False


# --- topic administration ---------------------------------------------------------------------

T = TypeVar("T")

TOPIC_READY_TIMEOUT_S = 30.0
_TOPIC_ALREADY_EXISTS = 36  # the CreateTopics error code we treat as success


def run_sync(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also when the caller already runs an
    event loop (e.g. an async test): then it runs on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="zmot-infra", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


async def describe_cluster(
    bootstrap: str, timeout_s: float, *, auth: KafkaAuth = PLAINTEXT
) -> dict[str, Any]:
    """The cluster metadata (brokers, cluster id) as the broker reports it."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        **auth.options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return cluster
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    timeout_s: float = TOPIC_READY_TIMEOUT_S,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    *,
    auth: KafkaAuth = PLAINTEXT,
) -> dict[str, int]:
    """Create each missing topic (name -> partitions, replication 1, with ``configs[name]``
    as its topic configuration, e.g. ``retention.ms``) and wait until every partition of each
    has a leader. Returns the partition count each topic has (an existing topic keeps its own
    partitions and configuration). Creating first matters: a metadata request for a missing
    topic would auto-create it with the broker's default partition count."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15000, **auth.options()
    )
    try:
        try:
            await asyncio.wait_for(admin.start(), 15)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise InfraError(
                f"Kafka at {bootstrap} is not reachable ({exc!r}): run `zmot infra up` with "
                "the same ZMOT_* settings"
            ) from exc
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, 1, topic_configs=dict((configs or {}).get(name, {})))
                for name, partitions in topics.items()
            ]
        )
        for err in response.to_object()["topic_errors"]:
            if err["error_code"] not in (0, _TOPIC_ALREADY_EXISTS):
                raise InfraError(
                    f"cannot create Kafka topic {err['topic']!r}: "
                    f"{err['error_message'] or 'error code ' + str(err['error_code'])}"
                )
        deadline = time.monotonic() + timeout_s
        while True:
            described = await admin.describe_topics(list(topics))
            counts = {
                t["topic"]: len(t["partitions"])
                for t in described
                if t["error_code"] == 0
                and t["partitions"]
                and all(part["leader"] >= 0 for part in t["partitions"])
            }
            if set(counts) >= set(topics):
                return {name: counts[name] for name in topics}
            if time.monotonic() > deadline:
                missing = sorted(set(topics) - set(counts))
                raise InfraError(
                    f"Kafka topics {missing} have no leader after {timeout_s:.0f} s on "
                    f"{bootstrap}: is the broker healthy? (`zmot infra status`)"
                )
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


def ensure_topic(
    bootstrap: str, name: str, partitions: int, *, auth: KafkaAuth = PLAINTEXT
) -> None:
    """Create topic ``name`` with ``partitions`` partitions on ``bootstrap`` if it is missing,
    and return once it is usable (every partition has a leader). Callable from sync code."""
    if partitions < 1:
        raise InfraError(f"a topic needs at least one partition, got {partitions} for {name!r}")
    run_sync(lambda: ensure_topics(bootstrap, {name: partitions}, auth=auth))
