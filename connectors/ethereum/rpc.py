"""Ethereum JSON-RPC over HTTP (httpx) and WebSocket (websockets), with the API key kept out of every log.

A provider's key sits in the URL (``https://eth-mainnet.g.alchemy.com/v2/<key>``, a ``?apikey=`` query,
``user:password@``) or in a header. :class:`Redactor` knows every secret piece of the configuration
and replaces it in any text that leaves this module (log lines, error messages, exception chains are
cut with ``from None``); :meth:`Redactor.url` is the form of a URL fit for a log: scheme, host, port.

Transport failures, timeouts, HTTP 429/5xx and the node's "busy" answers are :class:`RpcUnavailable`
and retried with backoff (a few attempts; the connector's session loop retries further); a JSON-RPC
error answer (bad params, unknown method, a reverted eth_call) is :class:`RpcError` and is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from coattail.errors import CoattailError
from coattail.retry import Backoff, retry_async

log = logging.getLogger("connectors.ethereum")
RPC_BACKOFF = Backoff(initial=0.25, factor=2, maximum=4, jitter=0.5)
_MIN_SECRET_CHARS = 6  # shorter path segments ("v2", "rpc") are not keys and are kept in errors
METHOD_NOT_FOUND = -32601


class RpcError(CoattailError, RuntimeError):
    """The node answered a JSON-RPC error (or something that is not JSON-RPC); one redacted line."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RpcUnavailable(RpcError):  # noqa: N818 - reads as what it is: the node is unavailable now
    """The node could not be reached or was busy (transport error, timeout, HTTP 429/5xx): retried."""


class Redactor:
    """Replaces the configuration's secrets (URL keys, header values) in text with ``***``."""

    def __init__(self, urls: Iterable[str | None], header_values: Iterable[str] = ()) -> None:
        secrets: set[str] = {v for v in header_values if v}
        for url in urls:
            if not url:
                continue
            parts = urlsplit(url)
            if parts.path.strip("/") or parts.query or parts.username or parts.password:
                secrets.add(url)
            secrets.update(s for s in parts.path.split("/") if len(s) >= _MIN_SECRET_CHARS)
            secrets.update(v for _, v in parse_qsl(parts.query) if len(v) >= _MIN_SECRET_CHARS)
            if parts.query:
                secrets.add(parts.query)
            secrets.update(s for s in (parts.username, parts.password) if s)
        self._secrets = sorted(secrets, key=len, reverse=True)  # the longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    @staticmethod
    def url(url: str | None) -> str:
        """``scheme://host:port`` (plus ``/***`` when a path or query was dropped): safe to log."""
        if not url:
            return ""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        hidden = "/***" if parts.path.strip("/") or parts.query else ""
        return f"{parts.scheme}://{host}{port}{hidden}"


def _why(exc: BaseException, redact: Redactor) -> str:
    """A transport error in one redacted line (httpx and websockets put the URL into their messages)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return redact(text)[:200]


def _result(method: str, reply: Any, redact: Redactor) -> Any:
    if type(reply) is not dict:
        raise RpcError(f"{method}: the node's reply is not a JSON-RPC object")
    error = reply.get("error")
    if error is not None:
        code = error.get("code") if type(error) is dict else None
        message = error.get("message") if type(error) is dict else error
        text = redact(" ".join(str(message).split()))[:300]
        # -32005 (limit exceeded) and -32603 "busy"-type answers are the node asking us to wait.
        kind = RpcUnavailable if code in (-32005, 429) else RpcError
        raise kind(f"{method}: error {code}: {text}", code if type(code) is int else None)
    if "result" not in reply:
        raise RpcError(f"{method}: the reply has neither result nor error")
    return reply["result"]


class RpcClient:
    """JSON-RPC over HTTP: ``await call(method, params)`` -> result (retried on unavailability)."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 20.0,
        attempts: int = 4,
        redactor: Redactor | None = None,
    ) -> None:
        self.redact = redactor or Redactor([url], (headers or {}).values())
        self.where = Redactor.url(url)
        self._url = url
        self._attempts = attempts
        self._client = httpx.AsyncClient(
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )
        self._ids = itertools.count(1)
        self.requests = 0

    async def call(self, method: str, params: list[Any]) -> Any:
        return await retry_async(
            lambda: self._once(method, params),
            what=f"ethereum RPC {self.where} {method}",
            deadline_seconds=120,
            max_attempts=self._attempts,
            retryable=lambda exc: isinstance(exc, RpcUnavailable),
            backoff=RPC_BACKOFF,
            reraise=True,
            logger=log,
        )

    async def _once(self, method: str, params: list[Any]) -> Any:
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        self.requests += 1
        try:
            response = await self._client.post(self._url, content=body)
        except httpx.TimeoutException:
            raise RpcUnavailable(f"{method}: no answer from {self.where} in time") from None
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{method}: {self.where} unreachable: {_why(exc, self.redact)}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise RpcUnavailable(f"{method}: {self.where} answered HTTP {response.status_code}")
        if response.status_code in (401, 403):
            raise RpcError(
                f"{method}: {self.where} refused the request (HTTP {response.status_code}): check the API key"
            )
        if response.status_code != 200:
            raise RpcError(f"{method}: {self.where} answered HTTP {response.status_code}")
        try:
            reply = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RpcError(f"{method}: {self.where} answered something that is not JSON") from None
        return _result(method, reply, self.redact)

    async def aclose(self) -> None:
        await self._client.aclose()


class HeadSubscription:
    """``eth_subscribe newHeads`` on a WebSocket: ``await next_head(timeout)`` -> block number or None."""

    def __init__(
        self, url: str, *, headers: dict[str, str] | None = None, redactor: Redactor | None = None
    ) -> None:
        self._url = url
        self._headers = headers or {}
        self.redact = redactor or Redactor([url], self._headers.values())
        self.where = Redactor.url(url)
        self.ws: ClientConnection | None = None
        self.subscription: str | None = None

    async def open(self, timeout: float = 15.0) -> None:
        """Connect and subscribe; RpcUnavailable (redacted) when the node cannot be reached."""
        try:
            self.ws = await websockets.connect(
                self._url, additional_headers=self._headers, open_timeout=timeout, ping_interval=20,
                ping_timeout=20, max_size=2**22, max_queue=256,
            )  # fmt: skip
            await self.ws.send(
                orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
            )
            async with asyncio.timeout(timeout):
                while self.subscription is None:
                    reply = orjson.loads(await self.ws.recv())
                    if type(reply) is dict and reply.get("id") == 1:
                        result = _result("eth_subscribe", reply, self.redact)
                        if type(result) is not str:
                            raise RpcError("eth_subscribe: the subscription id is not a string")
                        self.subscription = result
        except (
            OSError,
            TimeoutError,
            websockets.exceptions.WebSocketException,
            orjson.JSONDecodeError,
        ) as exc:
            await self.close()
            raise RpcUnavailable(f"WebSocket {self.where}: {_why(exc, self.redact)}") from None
        except RpcError:
            await self.close()
            raise

    async def next_head(self, timeout: float) -> int | None:
        """The number of the next announced head, None if none came within ``timeout`` seconds.

        RpcUnavailable when the connection dropped (the caller reconnects and catches up)."""
        if self.ws is None:
            raise RpcUnavailable(f"WebSocket {self.where}: not connected")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = orjson.loads(await self.ws.recv())
                    if type(message) is not dict or message.get("method") != "eth_subscription":
                        continue  # replies to nothing we asked; other subscriptions' traffic
                    params = message.get("params")
                    if type(params) is not dict or params.get("subscription") != self.subscription:
                        continue
                    head = params.get("result")
                    if type(head) is dict and type(head.get("number")) is str:
                        return int(head["number"], 16)
        except TimeoutError:
            return None
        except (OSError, websockets.exceptions.WebSocketException, orjson.JSONDecodeError, ValueError) as exc:
            raise RpcUnavailable(f"WebSocket {self.where} lost: {_why(exc, self.redact)}") from None

    async def close(self) -> None:
        ws, self.ws, self.subscription = self.ws, None, None
        if ws is not None:
            with contextlib.suppress(OSError, TimeoutError, websockets.exceptions.WebSocketException):
                await asyncio.wait_for(ws.close(), 5)
