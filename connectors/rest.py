"""An exchange's REST API behind its own rate-limit rules, for the live gap fill and the batch backfill.

One :class:`RestClient` per exchange module, built on that exchange's :class:`RateRules`. The same
rules object decides for both transports — ``get`` (sync, the backfill) and ``aget`` (async, the
connectors' gap fill): how long to wait before a request (a weight budget, a request rate), what a
response means (429: wait ``Retry-After``; 5xx and transport errors: back off and retry; anything the
rules call a ban: stop with one line). Retries go through :mod:`coattail.retry`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from coattail.errors import CoattailError
from coattail.retry import Backoff, one_line, retry, retry_async

log = logging.getLogger("connectors.rest")
REST_BACKOFF = Backoff(initial=0.5, factor=2, maximum=30, jitter=0.5)  # 5xx and transport errors


class RestError(CoattailError, RuntimeError):
    """The exchange's REST API could not be read; the message says why in one line."""


class BannedError(RestError):
    """The exchange banned this IP for ``retry_after`` seconds (Binance: HTTP 418). Never retried."""

    def __init__(self, exchange: str, status: int, retry_after: float) -> None:
        super().__init__(
            f"{exchange} banned this IP (HTTP {status}) for {retry_after:.0f} s; wait before retrying"
        )
        self.retry_after = retry_after


class ThrottledError(Exception):
    """The exchange asked us to slow down (HTTP 429): retried after ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited (HTTP 429), Retry-After {wait:.0f} s")
        self.wait = wait


class TransientError(Exception):
    """A 5xx or a transport error: retried with backoff."""


def retry_after(response: httpx.Response, default: float) -> float:
    """The response's ``Retry-After`` in seconds (``default`` when absent or not a number)."""
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return default


class RateRules:
    """Default rules: no budget, 429 waits ``Retry-After``, 5xx retried, other errors stop.

    Exchanges subclass it (request weights, request rates, bans). ``clock`` is wall time: exchanges
    count their limits per calendar minute or second.
    """

    exchange = "exchange"
    throttle_default_seconds = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def wait_before(self, path: str, weight: int) -> float:
        """Seconds to wait before sending a request of ``weight`` (0: send now)."""
        return 0.0

    def sent(self, path: str, weight: int) -> None:
        """Count a request that was sent."""

    def observe(self, response: httpx.Response, weight: int) -> None:
        """Learn from a response's headers (the server's own count wins over ours)."""

    def check(self, response: httpx.Response) -> None:
        """Raise for a response that is not a success (Throttled-, Transient-, Banned- or RestError)."""
        status = response.status_code
        if status < 300:
            return
        if status == 429:
            raise ThrottledError(retry_after(response, self.throttle_default_seconds))
        if status >= 500:
            raise TransientError(f"HTTP {status}")
        raise RestError(
            f"{self.exchange} {response.request.url.path} answered HTTP {status}: {response.text[:200]}"
        )


class RestClient:
    """GET with the rules: ``get`` for sync callers, ``aget`` for the event loop; counters for reports."""

    def __init__(
        self,
        base_url: str,
        rules: RateRules,
        *,
        max_attempts: int = 6,
        backoff: Backoff = REST_BACKOFF,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
    ) -> None:
        if not base_url:
            raise RestError(f"connectors.{rules.exchange}.rest_url is empty; set it to the exchange's API")
        self.base_url = base_url.rstrip("/")
        self.rules = rules
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self.requests = 0
        self.throttled = 0  # 429s seen
        self.paused_seconds = 0.0

    # -- sync (backfill) --------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None, *, weight: int = 1) -> Any:
        """The JSON body of ``GET path``, waiting and retrying as the rules say."""

        def once() -> Any:
            self._pause(self.rules.wait_before(path, weight))
            if self._sync is None:
                self._sync = httpx.Client(base_url=self.base_url, timeout=self.timeout)
            try:
                response = self._sync.get(path, params=params)
            except httpx.TransportError as exc:
                raise TransientError(one_line(exc)) from exc
            return self._answer(path, response, weight)

        return retry(once, sleep=self._pause, **self._policy(path))

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # -- async (live gap fill) --------------------------------------------------------------------
    async def aget(self, path: str, params: dict[str, Any] | None = None, *, weight: int = 1) -> Any:
        """:meth:`get` on the event loop."""

        async def once() -> Any:
            await self._apause(self.rules.wait_before(path, weight))
            if self._async is None:
                self._async = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
            try:
                response = await self._async.get(path, params=params)
            except httpx.TransportError as exc:
                raise TransientError(one_line(exc)) from exc
            return self._answer(path, response, weight)

        return await retry_async(once, sleep=self._apause, **self._policy(path))

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    # -- shared -----------------------------------------------------------------------------------
    def _answer(self, path: str, response: httpx.Response, weight: int) -> Any:
        self.requests += 1
        self.rules.sent(path, weight)
        self.rules.observe(response, weight)
        try:
            self.rules.check(response)
        except ThrottledError:
            self.throttled += 1
            raise
        try:
            return response.json()
        except ValueError:
            raise RestError(f"{self.rules.exchange} {path}: the answer is not JSON") from None

    def _policy(self, path: str) -> dict[str, Any]:
        return {
            "what": f"{self.rules.exchange} REST GET {path}",
            "deadline_seconds": math.inf,  # bounded by attempts; a Retry-After may be long
            "max_attempts": self.max_attempts,
            "retryable": lambda exc: isinstance(exc, ThrottledError | TransientError),
            "wait_hint": lambda exc: exc.wait if isinstance(exc, ThrottledError) else None,
            "backoff": self.backoff,
            "give_up": RestError,
            "logger": log,
        }

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.paused_seconds += seconds
            self._sleep(seconds)

    async def _apause(self, seconds: float) -> None:
        if seconds > 0:
            self.paused_seconds += seconds
            await self._async_sleep(seconds)
