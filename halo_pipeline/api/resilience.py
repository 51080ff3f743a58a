"""Process-wide request discipline for the Halo API, as an aiohttp client middleware.

Every request spnkr sends passes through :func:`resilience_middleware`, which

* waits on **one limiter per API service for the whole process** (``aiolimiter.AsyncLimiter``; spnkr's own
  limiter acquires *after* sending, so concurrent calls would all go out at once),
* caps requests in flight (a semaphore),
* honours ``429`` + ``Retry-After``: the wait is shared by every request to that service,
* retries ``5xx``, timeouts and connection errors with bounded exponential backoff and jitter (tenacity),
* on ``401`` asks ``refresh_auth`` once for new authentication headers and retries with them.

A request that still fails after ``max_attempts`` raises :class:`aiohttp.ClientResponseError` (status kept) or
the transport error, so callers record the failure; nothing is retried forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from halo_pipeline.api.redirect import service_of

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 120.0


class RetryableStatus(aiohttp.ClientResponseError):
    """A 429 or 5xx answer; ``retry_after`` holds the server's Retry-After in seconds, if any."""

    def __init__(self, response: ClientResponse, retry_after: float | None):
        super().__init__(
            response.request_info,
            response.history,
            status=response.status,
            message=response.reason or "",
            headers=response.headers,
        )
        self.retry_after = retry_after


def _retry_after_seconds(response: ClientResponse) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (RetryableStatus, asyncio.TimeoutError, aiohttp.ClientConnectionError))


@dataclass
class RequestGate:
    """Limiter, in-flight cap and shared ``Retry-After`` pause, per API service, for one process."""

    requests_per_second: float = 5.0
    max_in_flight: int = 8
    #: The clock and the sleep of every wait (Retry-After pauses, backoff between attempts): tests give a
    #: virtual pair to see the waits the real code path computes without waiting them.
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _limiters: dict[str, AsyncLimiter] = field(default_factory=dict)
    _paused_until: dict[str, float] = field(default_factory=dict)
    _in_flight: asyncio.Semaphore | None = None
    # Gates live in the process's one API event loop (see ``halo_pipeline.api.client.api_loop``), so their
    # limiters and semaphore are never shared across event loops.

    def limiter(self, service: str) -> AsyncLimiter:
        if service not in self._limiters:
            # max_rate=1 per 1/rps seconds: evenly spaced requests, no burst above the API's limit.
            self._limiters[service] = AsyncLimiter(1, 1.0 / self.requests_per_second)
        return self._limiters[service]

    def pause(self, service: str, seconds: float) -> None:
        """Hold every request to ``service`` for ``seconds`` (a 429's Retry-After)."""
        self._paused_until[service] = max(self._paused_until.get(service, 0.0), self.clock() + seconds)

    async def enter(self, service: str) -> None:
        """Wait for the service's pause to end, then for a slot of its limiter."""
        while (delay := self._paused_until.get(service, 0.0) - self.clock()) > 0:
            await self.sleep(delay)
        await self.limiter(service).acquire()

    def semaphore(self) -> asyncio.Semaphore:
        # Created lazily, in the running loop.
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self.max_in_flight)
        return self._in_flight


_GATES: dict[tuple[float, int], RequestGate] = {}


def process_gate(requests_per_second: float, max_in_flight: int) -> RequestGate:
    """The process-wide gate for these settings (one limiter per service for the whole process)."""
    key = (requests_per_second, max_in_flight)
    if key not in _GATES:
        _GATES[key] = RequestGate(requests_per_second, max_in_flight)
    return _GATES[key]


@dataclass
class RequestStats:
    """Counters of one client session: requests sent, retries, 429s honoured."""

    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    refreshed: int = 0


RefreshAuth = Callable[[Mapping[str, str]], Awaitable[Mapping[str, str]]]


def resilience_middleware(gate: RequestGate, stats: RequestStats, max_attempts: int = 6,
                          backoff_max_seconds: float = 30.0, refresh_auth: RefreshAuth | None = None):
    """aiohttp client middleware applying ``gate`` and retries (see module docstring).

    ``refresh_auth(expired_headers)`` returns fresh authentication headers (spnkr's token refresh); it is
    called at most once per request, on its first 401.
    """

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return 0.0  # the gate already holds the service for Retry-After
        return wait_random_exponential(multiplier=0.5, max=backoff_max_seconds)(state)

    async def middleware(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        service = service_of(request.url)
        refreshed: list[bool] = []
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(max_attempts),
            wait=wait,
            retry=retry_if_exception(_is_transient),
            reraise=True,
            sleep=gate.sleep,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    stats.retried += 1
                await gate.enter(service)
                async with gate.semaphore():
                    stats.sent += 1
                    response = await handler(request)
                if response.status == 401 and refresh_auth is not None and not refreshed:
                    refreshed.append(True)
                    stats.refreshed += 1
                    response.release()
                    request.headers.update(await refresh_auth(request.headers))
                    raise RetryableStatus(response, 0.0)
                if response.status in RETRYABLE_STATUS:
                    retry_after = _retry_after_seconds(response)
                    if response.status == 429:
                        stats.rate_limited += 1
                        gate.pause(service, retry_after if retry_after is not None else 1.0)
                    response.release()
                    raise RetryableStatus(response, retry_after)
                return response
        raise AssertionError("unreachable: tenacity reraises the last error")

    return middleware
