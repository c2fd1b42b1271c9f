""":class:`Client` (blocking) and :class:`AsyncClient` (asyncio), both on httpx.

They have the same methods with the same arguments; each method builds a
:class:`~zmot_client.calls.Call` and sends it with the retry policy
(:mod:`zmot_client.retry`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import httpx

from zmot_client import calls
from zmot_client.calls import Call, Channel
from zmot_client.errors import TransportError, api_error
from zmot_client.events import Event
from zmot_client.models import Consent, Erasure, Export, Link, OfferAnswer, Profile
from zmot_client.retry import (
    RETRY_STATUSES,
    RetryPolicy,
    delay_before_retry,
    retry_after_seconds,
)

__version__ = "0.1.0"
T = TypeVar("T")
DEFAULT_TIMEOUT_S = 5.0


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"zmot-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _request_args(call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params or None}
    if call.json is not None:
        args["json"] = call.json
    if call.language:
        args["headers"] = {"Accept-Language": call.language}
    return args


def _wait(policy: RetryPolicy, attempt: int, answer: httpx.Response | Exception) -> float | None:
    """Seconds to wait before trying again, or None: the answer is final."""
    if isinstance(answer, Exception):
        return delay_before_retry(policy, attempt, None)
    if answer.status_code not in RETRY_STATUSES:
        return None
    return delay_before_retry(
        policy, attempt, retry_after_seconds(answer.headers.get("retry-after"))
    )


def _result(call: Call[T], answer: httpx.Response | Exception) -> T:
    """The call's result from its final answer, or the exception it stands for."""
    if isinstance(answer, Exception):
        raise TransportError(f"{call.method} {call.path}: no answer ({answer!r})") from answer
    if answer.status_code == 404 and call.missing_ok:
        return None  # type: ignore[return-value]  # missing_ok calls are typed ``X | None``
    if answer.status_code >= 400:
        try:
            detail = answer.json().get("detail")
        except ValueError:
            detail = answer.text[:500]
        raise api_error(answer.status_code, detail, call.method, call.path)
    return call.parse(answer.json())


class Client:
    """Blocking client: ``Client("http://127.0.0.1:8000", api_key="...")``.

    ``timeout`` bounds each attempt (seconds); ``retry`` says how often 429, 503 and
    unanswered requests are tried again. Use it as a context manager or call :meth:`close`.
    ``transport`` replaces httpx's (tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            answer: httpx.Response | Exception
            try:
                answer = self._http.request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                answer = exc
            wait = _wait(self.retry, attempt, answer)
            if wait is None:
                return _result(call, answer)
            time.sleep(wait)
            attempt += 1

    def send_events(self, events: Iterable[Event]) -> int:
        """Send events (each given an ``event_id`` and ``ts`` if missing); the accepted count."""
        return sum(self._run(call) for call in calls.send_events(events))

    def next_best_offer(
        self,
        user_id: str,
        k: int | None = None,
        placement: str | None = None,
        channel: Channel | None = None,
        context_item: str | None = None,
        *,
        debug: bool = False,
        same_category: bool = False,
        timeout_ms: int | None = None,
        language: str | None = None,
    ) -> OfferAnswer:
        """The offers to show ``user_id`` now (``language``: reasons in de, en or it)."""
        return self._run(
            calls.next_best_offer(
                user_id,
                k,
                placement,
                channel,
                context_item,
                debug=debug,
                same_category=same_category,
                timeout_ms=timeout_ms,
                language=language,
            )
        )

    def next_best_offers(
        self,
        user_ids: Sequence[str],
        k: int | None = None,
        placement: str | None = None,
        channel: Channel | None = None,
        context_item: str | None = None,
        *,
        debug: bool = False,
        timeout_ms: int | None = None,
        language: str | None = None,
    ) -> list[OfferAnswer]:
        """One answer per user, in order, from one request."""
        return self._run(
            calls.next_best_offers(
                user_ids,
                k,
                placement,
                channel,
                context_item,
                debug=debug,
                timeout_ms=timeout_ms,
                language=language,
            )
        )

    def profile(self, user_id: str) -> Profile | None:
        """The live profile, None when the user has none."""
        return self._run(calls.profile(user_id))

    def export(self, user_id: str) -> Export:
        """Everything stored about the person."""
        return self._run(calls.export(user_id))

    def erase(self, user_id: str) -> Erasure:
        """Erase the person; their events up to now stay out of profiles for ever."""
        return self._run(calls.erase(user_id))

    def consent(self, user_id: str, profiling: bool) -> Consent:
        """Record the person's profiling choice (a refusal deletes the profile)."""
        return self._run(calls.consent(user_id, profiling))

    def link(self, user_id: str, anonymous_id: str) -> Link:
        """Link the anonymous id a visitor used before logging in to their user id."""
        return self._run(calls.link(user_id, anonymous_id))


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            answer: httpx.Response | Exception
            try:
                answer = await self._http.request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                answer = exc
            wait = _wait(self.retry, attempt, answer)
            if wait is None:
                return _result(call, answer)
            await asyncio.sleep(wait)
            attempt += 1

    async def send_events(self, events: Iterable[Event]) -> int:
        """Send events (each given an ``event_id`` and ``ts`` if missing); the accepted count."""
        return sum([await self._run(call) for call in calls.send_events(events)])

    async def next_best_offer(
        self,
        user_id: str,
        k: int | None = None,
        placement: str | None = None,
        channel: Channel | None = None,
        context_item: str | None = None,
        *,
        debug: bool = False,
        same_category: bool = False,
        timeout_ms: int | None = None,
        language: str | None = None,
    ) -> OfferAnswer:
        """The offers to show ``user_id`` now (``language``: reasons in de, en or it)."""
        return await self._run(
            calls.next_best_offer(
                user_id,
                k,
                placement,
                channel,
                context_item,
                debug=debug,
                same_category=same_category,
                timeout_ms=timeout_ms,
                language=language,
            )
        )

    async def next_best_offers(
        self,
        user_ids: Sequence[str],
        k: int | None = None,
        placement: str | None = None,
        channel: Channel | None = None,
        context_item: str | None = None,
        *,
        debug: bool = False,
        timeout_ms: int | None = None,
        language: str | None = None,
    ) -> list[OfferAnswer]:
        """One answer per user, in order, from one request."""
        return await self._run(
            calls.next_best_offers(
                user_ids,
                k,
                placement,
                channel,
                context_item,
                debug=debug,
                timeout_ms=timeout_ms,
                language=language,
            )
        )

    async def profile(self, user_id: str) -> Profile | None:
        """The live profile, None when the user has none."""
        return await self._run(calls.profile(user_id))

    async def export(self, user_id: str) -> Export:
        """Everything stored about the person."""
        return await self._run(calls.export(user_id))

    async def erase(self, user_id: str) -> Erasure:
        """Erase the person; their events up to now stay out of profiles for ever."""
        return await self._run(calls.erase(user_id))

    async def consent(self, user_id: str, profiling: bool) -> Consent:
        """Record the person's profiling choice (a refusal deletes the profile)."""
        return await self._run(calls.consent(user_id, profiling))

    async def link(self, user_id: str, anonymous_id: str) -> Link:
        """Link the anonymous id a visitor used before logging in to their user id."""
        return await self._run(calls.link(user_id, anonymous_id))
