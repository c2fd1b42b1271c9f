"""The faust-side pieces of the agent that need no broker: records and the DLQ sink."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from stream.agents import record_of
from stream.dead_letters import (
    DLQ_TRUNCATE_BYTES,
    TRUNCATED_HEADER,
    DeadLetter,
    faust_dead_letter_sink,
)
from stream.records import Record


class FakeTopic:
    """Records sends; the values listed in ``too_large`` fail like an oversized record."""

    def __init__(
        self,
        too_large: frozenset[bytes] = frozenset(),
        fail: Exception | None = None,
        refuse: frozenset[bytes] = frozenset(),
    ) -> None:
        self.sent: list[dict[str, Any]] = []
        self.too_large = too_large  # rejected by the broker (the future fails)
        self.refuse = refuse  # rejected by the producer (send raises)
        self.fail = fail

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        if kwargs["value"] in self.refuse:
            raise MessageSizeTooLargeError()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            fut.set_exception(self.fail)
        elif kwargs["value"] in self.too_large:
            fut.set_exception(MessageSizeTooLargeError())
        else:
            fut.set_result(None)
        return fut


def letter(offset: int, value: bytes, field: str | None = "user_id") -> DeadLetter:
    return DeadLetter(Record("ev", 2, offset, 1.0, b"k", value), "too long", field)


def test_record_of_keeps_position_time_and_bytes() -> None:
    msg = SimpleNamespace(topic="ev", partition=3, offset=42, timestamp=1.5, key=None, value=b"x")
    assert record_of(msg) == Record("ev", 3, 42, 1.5, None, b"x")
    assert record_of(msg).source == "ev/3/42"


async def test_sink_sends_original_bytes_with_reason_and_source() -> None:
    topic = FakeTopic()
    await faust_dead_letter_sink(topic)([letter(7, b"\xff"), letter(8, b"[]", None)])
    assert [s["value"] for s in topic.sent] == [b"\xff", b"[]"]
    assert all(s["key"] == b"k" and s["force"] for s in topic.sent)
    assert dict(topic.sent[0]["headers"]) == {
        "zmot-reason": b"user_id: too long",
        "zmot-field": b"user_id",
        "zmot-source": b"ev/2/7",
    }
    assert dict(topic.sent[1]["headers"]) == {"zmot-reason": b"too long", "zmot-source": b"ev/2/8"}


@pytest.mark.parametrize("where", ["broker", "producer"])
async def test_a_letter_too_large_to_send_is_resent_truncated(where: str) -> None:
    big = b"x" * (DLQ_TRUNCATE_BYTES * 3)
    if where == "broker":
        topic = FakeTopic(too_large=frozenset({big}))
    else:
        topic = FakeTopic(refuse=frozenset({big}))
    await faust_dead_letter_sink(topic)([letter(1, big), letter(2, b"small")])
    values = [s["value"] for s in topic.sent]
    assert sorted(values) == sorted([big, b"small", big[:DLQ_TRUNCATE_BYTES]])
    retry = next(s for s in topic.sent if s["value"] == big[:DLQ_TRUNCATE_BYTES])
    assert dict(retry["headers"])[TRUNCATED_HEADER] == str(len(big)).encode()
    assert dict(retry["headers"])["zmot-source"] == b"ev/2/1"


async def test_other_send_failures_fail_the_batch() -> None:
    with pytest.raises(OSError):
        await faust_dead_letter_sink(FakeTopic(fail=OSError("down")))([letter(1, b"x")])
