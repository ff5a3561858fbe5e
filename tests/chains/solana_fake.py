"""A fake Solana RPC node: real HTTP JSON-RPC and a real WebSocket on 127.0.0.1, in the real wire format.

HTTP (a threaded ``http.server``): ``getSlot`` (per commitment: confirmed runs ahead of finalized),
``getBlocks`` (produced slots of a range; skipped slots absent; the 500,000-slot range limit),
``getBlock`` (checks ``commitment``/``encoding``/``maxSupportedTransactionVersion``/
``transactionDetails``/``rewards`` as the node does; -32007 for a skipped slot and -32009 for a slot
missing in long-term storage, with the node's messages; -32004 beyond the tip) and ``getTransaction``.
WebSocket (``websockets``): ``rootSubscribe``/``slotSubscribe`` with ``rootNotification``/
``slotNotification`` as the chain finalizes, and their unsubscribe calls.

Blocks are the jsonParsed fixture block (tests/chains/fixtures/solana_block.json) re-issued per slot
with the slot's own block hash, time, parent and fresh transaction signatures, so every slot's
events are distinct. Failure injection: an API key header the server requires, HTTP 503s, an HTTP
connection dropped mid-request, WebSocket connections aborted and refused for a while.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from solders.hash import Hash
from solders.signature import Signature
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

FIXTURES = Path(__file__).parent / "fixtures"
BLOCK_TIME_ORIGIN = 1_733_011_200
MAX_SLOT_RANGE = 500_000
CONFIRMED_LEAD = 32  # confirmed runs this many slots ahead of finalized (roughly the real distance)


def fixture_block() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "solana_block.json").read_text())
    return data["block"]  # type: ignore[no-any-return]


def _hash_for(slot: int) -> str:
    return str(Hash(hashlib.sha256(f"block-{slot}".encode()).digest()))


def _signature_for(slot: int, position: int) -> str:
    return str(Signature(hashlib.sha512(f"tx-{slot}-{position}".encode()).digest()))


def rpc_error(code: int, message: str, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}


class FakeSolana:
    """Slots ``first..last``; ``skipped`` slots have no block (-32007), ``storage_gaps`` are listed by
    getBlocks but missing in long-term storage (-32009); ``finalized`` is the tip the test moves."""

    def __init__(
        self,
        first: int,
        last: int,
        *,
        skipped: Iterable[int] = (),
        storage_gaps: Iterable[int] = (),
        finalized: int | None = None,
        api_key: tuple[str, str] | None = None,
        offer_subscriptions: bool = True,
        template: dict[str, Any] | None = None,
    ) -> None:
        self.first, self.last = first, last
        self.skipped = set(skipped)
        self.storage_gaps = set(storage_gaps)
        self.finalized = first if finalized is None else finalized
        self.api_key = api_key
        self.offer_subscriptions = offer_subscriptions
        self.blocks = self._build(template or fixture_block())
        self.calls: list[tuple[str, list[Any]]] = []
        self.fail_http = 0  # answer this many next requests with HTTP 503
        self.drop_get_block: set[int] = set()  # close the connection once on getBlock of these slots
        self.ws_refuse = False
        self.ws_connections = 0
        self._subscribers: dict[ServerConnection, tuple[str, int]] = {}
        self._next_subscription = 0
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._http: ThreadingHTTPServer | None = None

    # -- the chain ---------------------------------------------------------------------------------
    def produced(self, start: int | None = None, end: int | None = None) -> list[int]:
        lo, hi = start if start is not None else self.first, end if end is not None else self.last
        return [s for s in range(max(lo, self.first), min(hi, self.last) + 1) if s not in self.skipped]

    def _build(self, template: dict[str, Any]) -> dict[int, dict[str, Any]]:
        blocks: dict[int, dict[str, Any]] = {}
        parent = self.first - 1
        for slot in self.produced():
            block = copy.deepcopy(template)
            block.update(
                blockhash=_hash_for(slot), previousBlockhash=_hash_for(parent), parentSlot=parent,
                blockTime=BLOCK_TIME_ORIGIN + (slot - self.first) * 2 // 5, blockHeight=slot - 20_000_000,
            )  # fmt: skip
            for position, tx in enumerate(block["transactions"]):
                tx["transaction"]["signatures"] = [_signature_for(slot, position)]
            blocks[slot] = block
            parent = slot
        return blocks

    def tip(self, commitment: str) -> int:
        if commitment == "finalized":
            return self.finalized
        return min(self.last, self.finalized + CONFIRMED_LEAD)

    async def finalize_to(self, slot: int) -> None:
        """Move the finalized tip and notify the subscribers of every new root (and slot)."""
        with self._lock:
            old, self.finalized = self.finalized, slot
        for root in range(old + 1, slot + 1):
            for ws, (method, sub) in list(self._subscribers.items()):
                if method == "rootSubscribe":
                    params: dict[str, Any] = {"result": root, "subscription": sub}
                    note = {"jsonrpc": "2.0", "method": "rootNotification", "params": params}
                else:
                    result = {"parent": root - 1, "root": root, "slot": root + CONFIRMED_LEAD}
                    params = {"result": result, "subscription": sub}
                    note = {"jsonrpc": "2.0", "method": "slotNotification", "params": params}
                try:
                    await ws.send(orjson.dumps(note).decode())
                except Exception:  # noqa: S112 - a subscriber that went away
                    continue

    def block_calls(self) -> list[int]:
        return [params[0] for method, params in self.calls if method == "getBlock"]

    # -- servers -------------------------------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await serve(self._ws, "127.0.0.1", 0, process_request=self._ws_gate)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def drop_websockets(self) -> None:
        """Abort every WebSocket connection without a close frame (a dropped TCP connection)."""
        for ws in list(self._subscribers):
            ws.transport.abort()
        self._subscribers.clear()

    # -- WebSocket -----------------------------------------------------------------------------------
    def _ws_gate(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.ws_refuse:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "node restarting\n")
        if self.api_key is not None and request.headers.get(self.api_key[0]) != self.api_key[1]:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        return None

    async def _ws(self, ws: ServerConnection) -> None:
        self.ws_connections += 1
        try:
            async for raw in ws:
                request = json.loads(raw)
                method, request_id = request.get("method"), request.get("id")
                if method in ("rootSubscribe", "slotSubscribe") and self.offer_subscriptions:
                    sub = self._next_subscription
                    self._next_subscription += 1
                    self._subscribers[ws] = (method, sub)
                    await ws.send(json.dumps({"jsonrpc": "2.0", "result": sub, "id": request_id}))
                elif method in ("rootUnsubscribe", "slotUnsubscribe"):
                    self._subscribers.pop(ws, None)
                    await ws.send(json.dumps({"jsonrpc": "2.0", "result": True, "id": request_id}))
                else:
                    await ws.send(json.dumps(rpc_error(-32601, "Method not found", request_id)))
        except Exception:  # noqa: S110 - the client went away
            pass
        finally:
            self._subscribers.pop(ws, None)

    # -- HTTP JSON-RPC -------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if fake.api_key is not None and self.headers.get(fake.api_key[0]) != fake.api_key[1]:
                    self._send(401, {"jsonrpc": "2.0", "error": {"code": 401, "message": "Unauthorized"}})
                    return
                with fake._lock:
                    failing = fake.fail_http > 0
                    fake.fail_http -= failing
                if failing:
                    self._send(503, {"error": "service unavailable"})
                    return
                try:
                    request = json.loads(body)
                except ValueError:
                    self._send(200, rpc_error(-32700, "Parse error", None))
                    return
                method, params = request.get("method"), request.get("params") or []
                with fake._lock:
                    fake.calls.append((method, params))
                    drop = method == "getBlock" and params and params[0] in fake.drop_get_block
                    if drop:
                        fake.drop_get_block.discard(params[0])
                if drop:
                    self.close_connection = True
                    self.connection.close()  # mid-request: the client sees the connection drop
                    return
                self._send(200, fake.answer(method, params, request.get("id")))

            def _send(self, status: int, payload: Any) -> None:
                data = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def answer(self, method: str, params: list[Any], request_id: Any) -> dict[str, Any]:
        config = params[-1] if params and isinstance(params[-1], dict) else {}
        commitment = config.get("commitment", "finalized")
        if commitment not in ("processed", "confirmed", "finalized"):
            return rpc_error(-32602, "Invalid params: invalid commitment", request_id)
        tip = self.tip(commitment)
        if method == "getSlot":
            return {"jsonrpc": "2.0", "result": tip, "id": request_id}
        if method == "getBlocks":
            return self._get_blocks(params, commitment, tip, request_id)
        if method == "getBlock":
            return self._get_block(params, config, tip, request_id)
        if method == "getTransaction":
            return self._get_transaction(params, tip, request_id)
        return rpc_error(-32601, "Method not found", request_id)

    def _get_blocks(self, params: list[Any], commitment: str, tip: int, request_id: Any) -> dict[str, Any]:
        if commitment == "processed":
            return rpc_error(-32602, "Method does not support commitment below `confirmed`", request_id)
        start = params[0] if params else None
        end = params[1] if len(params) > 1 and isinstance(params[1], int) else tip
        if type(start) is not int:
            return rpc_error(-32602, "Invalid params: start_slot", request_id)
        if end - start > MAX_SLOT_RANGE:
            return rpc_error(-32602, f"Slot range too large; max {MAX_SLOT_RANGE}", request_id)
        return {"jsonrpc": "2.0", "result": self.produced(start, min(end, tip)), "id": request_id}

    def _get_block(
        self, params: list[Any], config: dict[str, Any], tip: int, request_id: Any
    ) -> dict[str, Any]:
        slot = params[0] if params else None
        if type(slot) is not int:
            return rpc_error(-32602, "Invalid params: slot", request_id)
        if config.get("encoding", "json") != "jsonParsed":
            return rpc_error(-32602, "Invalid params: this fake serves encoding jsonParsed only", request_id)
        details = config.get("transactionDetails", "full")
        if details != "full":
            return rpc_error(
                -32602, "Invalid params: this fake serves transactionDetails full only", request_id
            )
        if slot > tip or slot > self.last:
            return rpc_error(-32004, f"Block not available for slot {slot}", request_id)
        if slot in self.skipped or slot < self.first:
            message = f"Slot {slot} was skipped, or missing due to ledger jump to recent snapshot"
            return rpc_error(-32007, message, request_id)
        if slot in self.storage_gaps:
            return rpc_error(-32009, f"Slot {slot} was skipped, or missing in long-term storage", request_id)
        block = dict(self.blocks[slot])
        if (
            any(tx.get("version") == 0 for tx in block["transactions"])
            and config.get("maxSupportedTransactionVersion") is None
        ):
            message = (
                "Transaction version (0) is not supported by the requesting client. Please try the request "
                'again with the following configuration parameter: "maxSupportedTransactionVersion": 0'
            )
            return rpc_error(-32015, message, request_id)
        if config.get("rewards", True):
            block["rewards"] = []
        return {"jsonrpc": "2.0", "result": block, "id": request_id}

    def _get_transaction(self, params: list[Any], tip: int, request_id: Any) -> dict[str, Any]:
        signature = params[0] if params else None
        for slot, block in self.blocks.items():
            if slot > tip:
                break
            for tx in block["transactions"]:
                if tx["transaction"]["signatures"][0] == signature:
                    result = {"slot": slot, "blockTime": block["blockTime"], **tx}
                    return {"jsonrpc": "2.0", "result": result, "id": request_id}
        return {"jsonrpc": "2.0", "result": None, "id": request_id}
