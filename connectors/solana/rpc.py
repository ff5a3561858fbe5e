"""Solana JSON-RPC over HTTP: ``getSlot``, ``getBlocks``, ``getBlock``, ``getTransaction``.

Requests are spaced to ``requests_per_second``; HTTP 429 waits ``Retry-After``; 5xx and transport
errors back off and retry (:mod:`coattail.retry`). A skipped slot is an answer, not an error:
``getBlock`` returns None for -32007 ("Slot N was skipped, or missing due to ledger jump to recent
snapshot") and -32009 ("… missing in long-term storage"). -32004 / -32014 (block not available *yet*)
raise :class:`BlockNotReadyError`: the caller asks again later instead of skipping the slot. Errors and
log lines name the endpoint by :func:`redact_url` only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from typing import Any

import httpx
import orjson

from coattail.errors import CoattailError
from coattail.retry import Backoff, one_line, retry_async
from connectors.rest import ThrottledError, TransientError, retry_after
from connectors.solana.settings import SolanaSettings, keep_out_of_logs, redact_url

log = logging.getLogger("connectors.solana")

SLOT_SKIPPED = -32007
LONG_TERM_STORAGE_SLOT_SKIPPED = -32009
SKIPPED_CODES = frozenset((SLOT_SKIPPED, LONG_TERM_STORAGE_SLOT_SKIPPED))
BLOCK_NOT_AVAILABLE = -32004
BLOCK_STATUS_NOT_AVAILABLE_YET = -32014
NOT_READY_CODES = frozenset((BLOCK_NOT_AVAILABLE, BLOCK_STATUS_NOT_AVAILABLE_YET))
NODE_UNHEALTHY = -32005
RPC_BACKOFF = Backoff(initial=0.5, factor=2, maximum=30, jitter=0.5)


class RpcError(CoattailError, RuntimeError):
    """The endpoint answered a JSON-RPC error (or nonsense); one line with the method and the code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BlockNotReadyError(RpcError):
    """The node has not got that block yet (-32004, -32014): ask again later, do not skip it."""


class SolanaRpc:
    """An async JSON-RPC client of one endpoint (its URL may hold an API key: never logged whole)."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        requests_per_second: float = 10.0,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff: Backoff = RPC_BACKOFF,
    ) -> None:
        self.url = url
        self.shown = redact_url(url)
        keep_out_of_logs(url, self.shown)
        for value in (headers or {}).values():
            keep_out_of_logs(value)
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._spacing = 1.0 / requests_per_second
        self._next_at = 0.0
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._ids = itertools.count(1)
        self._client: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self.requests = 0

    @classmethod
    def from_settings(cls, settings: SolanaSettings) -> SolanaRpc:
        return cls(
            settings.resolved_rpc_url(),
            headers=settings.headers(),
            requests_per_second=settings.requests_per_second,
            timeout=settings.request_timeout_seconds,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- methods ---------------------------------------------------------------------------------
    async def get_slot(self, commitment: str) -> int:
        slot = await self.call("getSlot", [{"commitment": commitment}])
        if type(slot) is not int or slot < 0:
            raise RpcError(f"solana getSlot at {self.shown}: expected a slot number")
        return slot

    async def get_blocks(self, start: int, end: int, commitment: str) -> list[int]:
        """The produced (not skipped) slots in [start, end], ascending."""
        slots = await self.call("getBlocks", [start, end, {"commitment": commitment}])
        if not isinstance(slots, list) or not all(type(s) is int and start <= s <= end for s in slots):
            raise RpcError(f"solana getBlocks at {self.shown}: expected a list of slots in [{start}, {end}]")
        return sorted(slots)

    async def get_block(self, slot: int, commitment: str) -> dict[str, Any] | None:
        """The block at ``slot`` (jsonParsed, full transactions, v0 included); None for a skipped slot."""
        params = {
            "commitment": commitment,
            "encoding": "jsonParsed",
            "maxSupportedTransactionVersion": 0,
            "transactionDetails": "full",
            "rewards": False,
        }
        try:
            block = await self.call("getBlock", [slot, params])
        except RpcError as exc:
            if exc.code in SKIPPED_CODES:
                return None
            if exc.code in NOT_READY_CODES:
                raise BlockNotReadyError(str(exc), exc.code) from None
            raise
        if block is None:  # some nodes answer null for a slot without a block
            return None
        if not isinstance(block, dict):
            raise RpcError(f"solana getBlock {slot} at {self.shown}: expected a block object")
        return block

    async def get_transaction(self, signature: str, commitment: str) -> dict[str, Any] | None:
        params = {"commitment": commitment, "encoding": "jsonParsed", "maxSupportedTransactionVersion": 0}
        result = await self.call("getTransaction", [signature, params])
        return result if isinstance(result, dict) else None

    # -- transport -------------------------------------------------------------------------------
    async def call(self, method: str, params: list[Any]) -> Any:
        """``result`` of one JSON-RPC request; RpcError for an error answer, retried when transient."""

        async def once() -> Any:
            await self._space()
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
            body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
            try:
                response = await self._client.post(self.url, content=body)
            except httpx.TransportError as exc:
                raise TransientError(one_line(exc)) from None  # httpx messages may carry the URL
            self.requests += 1
            return self._answer(method, response)

        return await retry_async(
            once,
            what=f"solana {method} at {self.shown}",
            deadline_seconds=math.inf,
            max_attempts=self._max_attempts,
            retryable=lambda exc: isinstance(exc, ThrottledError | TransientError),
            wait_hint=lambda exc: exc.wait if isinstance(exc, ThrottledError) else None,
            backoff=self._backoff,
            give_up=RpcError,
            logger=log,
        )

    def _answer(self, method: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 429:
            raise ThrottledError(retry_after(response, 10.0))
        if status >= 500:
            raise TransientError(f"HTTP {status}")
        if status >= 300:
            hint = " (check api_key_header / api_key_env)" if status in (401, 403) else ""
            raise RpcError(f"solana {method} at {self.shown} answered HTTP {status}{hint}")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RpcError(f"solana {method} at {self.shown}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise RpcError(f"solana {method} at {self.shown}: expected a JSON-RPC response object")
        error = data.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            if code == NODE_UNHEALTHY:
                raise TransientError(f"node unhealthy: {text[:120]}")
            raise RpcError(f"solana {method} at {self.shown}: error {code}: {text[:200]}", code)
        if "result" not in data:
            raise RpcError(f"solana {method} at {self.shown}: the answer has neither result nor error")
        return data["result"]

    async def _space(self) -> None:
        """At most ``requests_per_second``: each request waits for its turn."""
        async with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + self._spacing
        if wait > 0:
            await asyncio.sleep(wait)
