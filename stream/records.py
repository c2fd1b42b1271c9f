"""A Kafka message as the stream code sees it, independent of faust."""

from __future__ import annotations

from typing import Any, NamedTuple

from recommender.adapters.logs import message_fields


class Record(NamedTuple):
    """One Kafka message as the batch logic needs it (timestamp in epoch seconds)."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        """``topic/partition/offset``, the message's address in logs and DLQ headers."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def log_fields(self) -> dict[str, Any]:
        """``extra=`` of a log line about this message (JSON logs show them as fields)."""
        return message_fields(self.topic, self.partition, self.offset)
