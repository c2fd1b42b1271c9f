"""Dead letters: messages the worker cannot apply, sent to the DLQ with the reason in headers.

A dead letter keeps the original key and value bytes; its headers say why (``zmot-reason``,
prefixed by the offending field), which field (``zmot-field``) and where it came from
(``zmot-source``: ``topic/partition/offset``). One too large for the broker is resent with its
value cut to :data:`DLQ_TRUNCATE_BYTES` and its original size in ``zmot-truncated``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from aiokafka.errors import MessageSizeTooLargeError

from stream.records import Record

log = logging.getLogger(__name__)

REASON_HEADER = "zmot-reason"
FIELD_HEADER = "zmot-field"
SOURCE_HEADER = "zmot-source"
TRUNCATED_HEADER = "zmot-truncated"

DLQ_TRUNCATE_BYTES = 64 * 1024
"""A dead letter too large for the broker is resent with its value cut to this size."""


class DeadLetter(NamedTuple):
    """A message the worker cannot apply, with the reason and the offending field."""

    record: Record
    reason: str
    field: str | None = None

    @property
    def reason_text(self) -> str:
        """The reason, prefixed by the field it is about (``ts: missing, ...``)."""
        return f"{self.field}: {self.reason}" if self.field else self.reason

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead letter: reason (with field), field, source."""
        out = [
            (REASON_HEADER, self.reason_text.encode()),
            (SOURCE_HEADER, self.record.source.encode()),
        ]
        if self.field:
            out.append((FIELD_HEADER, self.field.encode()))
        return out


DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]
"""Delivers dead letters and returns only once the broker has acknowledged all of them."""


async def deliver(letters: Sequence[DeadLetter], sink: DeadLetterSink) -> None:
    """Log each dead letter with its Kafka address, then send them all through ``sink``."""
    for letter in letters:
        log.warning(
            "dead letter %s: %s",
            letter.record.source,
            letter.reason_text,
            extra=letter.record.log_fields,
        )
    await sink(letters)


def faust_dead_letter_sink(dlq: Any) -> DeadLetterSink:
    """A sink producing to the faust topic ``dlq`` with the original key and value bytes."""

    async def send(letters: Sequence[DeadLetter]) -> None:
        pending = []
        for letter in letters:
            try:
                # force=True: send now rather than attach to the source event (faust would
                # publish attachments at commit time, after our ack).
                fut = await dlq.send(
                    key=letter.record.key,
                    value=letter.record.value,
                    headers=letter.headers,
                    force=True,
                )
            except MessageSizeTooLargeError:  # over the producer's own limit
                await _send_truncated(dlq, letter)
                continue
            pending.append((letter, fut))
        results = await asyncio.gather(*(fut for _, fut in pending), return_exceptions=True)
        for (letter, _), result in zip(pending, results, strict=True):
            if isinstance(result, MessageSizeTooLargeError):  # over the broker's limit
                await _send_truncated(dlq, letter)
            elif isinstance(result, BaseException):
                raise result

    return send


async def _send_truncated(dlq: Any, letter: DeadLetter) -> None:
    """Dead-letter a message whose value plus headers no longer fits the broker's limit."""
    value = letter.record.value or b""
    log.warning(
        "dead letter %s is too large for the DLQ (%d bytes); sending its first %d bytes",
        letter.record.source,
        len(value),
        DLQ_TRUNCATE_BYTES,
        extra=letter.record.log_fields,
    )
    headers = [*letter.headers, (TRUNCATED_HEADER, str(len(value)).encode())]
    fut = await dlq.send(
        key=letter.record.key, value=value[:DLQ_TRUNCATE_BYTES], headers=headers, force=True
    )
    await fut
