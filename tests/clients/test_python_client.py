"""The Python client without a server: retry waits, Retry-After, event ids, error mapping.

Requests go to an ``httpx.MockTransport`` that answers from a script, so each test knows
exactly which answers the client saw; waits are recorded, not slept (``time.sleep`` patched).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from zmot_client import Client, RetryPolicy, TransportError, Unauthorized, Unavailable
from zmot_client.errors import InvalidRequest
from zmot_client.events import prepared
from zmot_client.retry import delay_before_retry, retry_after_seconds

ANSWER = {
    "user_id": "u-1",
    "offers": [],
    "model_version": "m",
    "fallback": True,
    "personalised": False,
}


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    # An HTTP date 10 s after "now".
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:10 GMT", now=1767225600.0) == 10.0
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:10 GMT", now=1767225700.0) == 0.0


def test_backoff_grows_with_jitter_and_stops_after_the_last_attempt() -> None:
    policy = RetryPolicy(attempts=4, backoff_s=1.0, max_backoff_s=3.0)
    rand = random.Random(1)
    waits = [delay_before_retry(policy, n, None, rand) for n in range(4)]
    assert waits[3] is None
    for n, wait in enumerate(waits[:3]):
        assert wait is not None
        ceiling = min(3.0, 2.0**n)
        assert ceiling * 0.5 <= wait < ceiling
    # The server's Retry-After wins, unless it asks for longer than the policy allows.
    assert delay_before_retry(policy, 0, 7.0) == 7.0
    assert delay_before_retry(RetryPolicy(max_retry_after_s=5), 0, 7.0) is None


def test_prepared_events_get_an_id_and_a_time_once() -> None:
    given = [
        {"user_id": "a", "type": "search", "query": "tv"},
        {"user_id": "b", "type": "x", "event_id": "e-1", "ts": 5},
    ]
    rows = prepared(given, now_ms=1_800_000_000_000)
    assert rows[0]["ts"] == 1_800_000_000_000 and len(rows[0]["event_id"]) == 36
    assert rows[1]["event_id"] == "e-1" and rows[1]["ts"] == 5
    assert "event_id" not in given[0]  # the caller's dicts are not changed


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    recorded: list[float] = []
    monkeypatch.setattr("zmot_client.client.time.sleep", recorded.append)
    yield recorded


def scripted(answers: list[httpx.Response | Exception], seen: list[httpx.Request]) -> Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Client("http://zmot.test", api_key="secret", transport=httpx.MockTransport(handle))


def test_a_429_is_retried_after_the_servers_retry_after_with_the_same_events(
    waits: list[float],
) -> None:
    seen: list[httpx.Request] = []
    client = scripted(
        [
            httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow down"}),
            httpx.Response(503, json={"detail": "Kafka down"}),
            httpx.Response(202, json={"accepted": 1, "event_ids": ["e-1"]}),
        ],
        seen,
    )
    assert client.send_events([{"user_id": "u-1", "type": "search", "query": "tv"}]) == 1
    assert waits[0] == 2.0 and 0.1 <= waits[1] < 0.4  # Retry-After, then backoff 0.2*2 jittered
    bodies = [json.loads(r.content) for r in seen]
    assert bodies[0] == bodies[1] == bodies[2]  # one event_id and ts for every attempt
    assert bodies[0][0]["event_id"]
    assert all(r.headers["authorization"] == "Bearer secret" for r in seen)


def test_unanswered_requests_are_retried_then_raise_a_transport_error(waits: list[float]) -> None:
    seen: list[httpx.Request] = []
    refused = httpx.ConnectError("refused")
    client = scripted([refused, refused], seen)
    client.retry = RetryPolicy(attempts=2)
    with pytest.raises(TransportError):
        client.next_best_offer("u-1")
    assert len(seen) == 2 and len(waits) == 1


def test_errors_are_typed_and_not_retried(waits: list[float]) -> None:
    seen: list[httpx.Request] = []
    detail: list[dict[str, Any]] = [{"index": None, "field": "k", "reason": "too big"}]
    client = scripted(
        [
            httpx.Response(401, json={"detail": "missing API key"}),
            httpx.Response(422, json={"detail": detail}),
            httpx.Response(404, json={"detail": "no profile"}),
            httpx.Response(200, json=ANSWER),
        ],
        seen,
    )
    with pytest.raises(Unauthorized):
        client.next_best_offer("u-1")
    with pytest.raises(InvalidRequest) as invalid:
        client.next_best_offer("u-1", k=10_000)
    assert invalid.value.detail == detail
    assert client.profile("u-1") is None
    answer = client.next_best_offer("u 1/x", k=2, placement="home", language="de")
    assert answer.fallback is True and waits == []
    last = seen[-1]
    assert last.url.params["user_id"] == "u 1/x" and last.url.params["k"] == "2"
    assert last.headers["accept-language"] == "de"


def test_a_persistent_429_raises_unavailable_after_the_last_attempt(waits: list[float]) -> None:
    seen: list[httpx.Request] = []
    client = scripted([httpx.Response(429, headers={"Retry-After": "1"})] * 3, seen)
    client.retry = RetryPolicy(attempts=3)
    with pytest.raises(Unavailable) as error:
        client.erase("a/b")
    assert error.value.status == 429 and waits == [1.0, 1.0]
    assert seen[0].url.raw_path == b"/v1/users/a%2Fb"
