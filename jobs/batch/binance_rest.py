"""Binance ``GET /api/v3/aggTrades`` with the exchange's rate-limit rules kept at this edge.

* Every response carries ``X-MBX-USED-WEIGHT-1m`` (the IP's weight this minute). We stay under our
  own budget (``batch.request_weight_budget``, well below the ban line) by waiting for the next
  minute when the next request would cross it — so a 429 is rare.
* A 429 means "back off now": we wait ``Retry-After`` seconds before the next request. Continuing
  to send after a 429 is what earns a 418 (an IP ban); a 418 stops the run with its ``Retry-After``.
* 5xx and transport errors are retried with exponential backoff; other 4xx are the caller's bug.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from coattail.errors import CoattailError

log = logging.getLogger("jobs.batch")

AGG_TRADES = "/api/v3/aggTrades"
PAGE_LIMIT = 1000
REQUEST_WEIGHT = 4  # aggTrades costs 2 (spot API docs); counted double to leave room for others
HOUR_MS = 3_600_000


class RestError(CoattailError, RuntimeError):
    """The REST history could not be read; the message says why in one line."""


class BannedError(RestError):
    """HTTP 418: the IP is banned for ``retry_after`` seconds. Never retried automatically."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Binance banned this IP (HTTP 418) for {retry_after:.0f} s; wait before retrying")
        self.retry_after = retry_after


class AggTradesClient:
    """Paged aggTrades reads that respect the weight budget and ``Retry-After``."""

    def __init__(
        self,
        base_url: str,
        *,
        weight_budget: int = 3000,
        max_attempts: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not base_url:
            raise RestError("connectors.binance.rest_url is empty; set it to https://api.binance.com")
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.weight_budget = weight_budget
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.clock = clock
        self.used_weight = 0
        self._minute = -1
        self.requests = 0
        self.throttled = 0  # 429s seen
        self.paused_seconds = 0.0

    def close(self) -> None:
        self.http.close()

    # -- public reads ---------------------------------------------------------------------------
    def first_id_at_or_after(self, native: str, start_ms: int, end_ms: int) -> int | None:
        """Aggregate id of the first trade in [start, end), hour by hour (the API's window limit)."""
        t = start_ms
        while t < end_ms:
            window_end = min(t + HOUR_MS, end_ms) - 1
            rows = self.get({"symbol": native, "startTime": t, "endTime": window_end, "limit": 1})
            if rows:
                return int(rows[0]["a"])
            t = window_end + 1
        return None

    def page(self, native: str, from_id: int) -> list[dict[str, Any]]:
        return self.get({"symbol": native, "fromId": from_id, "limit": PAGE_LIMIT})

    # -- one request with the rules -------------------------------------------------------------
    def get(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        for attempt in range(1, self.max_attempts + 1):
            self._respect_budget()
            try:
                response = self.http.get(AGG_TRADES, params=params)
            except httpx.TransportError as exc:
                self._retry_or_raise(attempt, f"{type(exc).__name__}: {exc}")
                continue
            self.requests += 1
            self._note_weight(response)
            if response.status_code == 200:
                body = response.json()
                if not isinstance(body, list):
                    raise RestError(f"{AGG_TRADES}: expected a JSON array, got {type(body).__name__}")
                return body
            if response.status_code == 418:
                raise BannedError(_retry_after(response, 120.0))
            if response.status_code == 429:
                wait = _retry_after(response, 60.0)
                self.throttled += 1
                log.warning("rate limited (429): waiting %.0f s as Retry-After asks", wait)
                self._pause(wait)
                continue
            if response.status_code >= 500:
                self._retry_or_raise(attempt, f"HTTP {response.status_code}")
                continue
            raise RestError(
                f"{AGG_TRADES} {params} answered HTTP {response.status_code}: {response.text[:200]}"
            )
        raise RestError(f"{AGG_TRADES}: still failing after {self.max_attempts} attempts")

    def _retry_or_raise(self, attempt: int, why: str) -> None:
        if attempt >= self.max_attempts:
            raise RestError(f"{AGG_TRADES}: {why} after {attempt} attempts")
        wait = min(0.5 * 2 ** (attempt - 1), 30.0)
        log.warning("%s: %s; retrying in %.1f s", AGG_TRADES, why, wait)
        self._pause(wait)

    def _note_weight(self, response: httpx.Response) -> None:
        header = response.headers.get("X-MBX-USED-WEIGHT-1m")
        self._roll_minute()
        if header and header.isdigit():
            self.used_weight = int(header)  # the server's count wins over ours
        else:
            self.used_weight += REQUEST_WEIGHT

    def _respect_budget(self) -> None:
        self._roll_minute()
        if self.used_weight + REQUEST_WEIGHT > self.weight_budget:
            wait = 60.0 - self.clock() % 60.0 + 0.05  # weights reset at the minute boundary
            log.info(
                "used weight %d of budget %d: pausing %.1f s", self.used_weight, self.weight_budget, wait
            )
            self._pause(wait)
            self.used_weight = 0

    def _roll_minute(self) -> None:
        minute = int(self.clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self.used_weight = 0

    def _pause(self, seconds: float) -> None:
        self.paused_seconds += seconds
        self.sleep(seconds)


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return default
