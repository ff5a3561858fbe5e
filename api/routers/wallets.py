"""GET /wallets/top (the alpha leaderboard of a chain) and GET /wallets/{chain}/{address} (one wallet).

Both read the wallet store (coattail.hotstore.wallets): a few key lookups and Queries, never the lake.
The wallet page is one operation per chain in the OpenAPI, each with its chain's address pattern, so
the documented shape of an address is exact; a catch-all behind them answers 422 for other chains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from api import wallet_cursor
from api.cursor import MAX_CURSOR_CHARS, CursorError
from api.deps import CursorKeyDep, StoreDep, WalletsDep
from api.errors import ERROR_RESPONSES, InvalidParameterError, Problem
from api.schemas import WalletDetail, WalletPage
from coattail.chains.labels import LabelError, normalize_address
from coattail.contracts.onchain import BLOCKCHAINS, Blockchain
from coattail.hotstore import AlertReader
from coattail.hotstore.wallets import ADDRESS_PATTERNS, WalletStore, WalletStoreError

JSON = "application/json"
ChainQuery = Query(description="The chain of the leaderboard")
DEFAULT_TOP = 20
MAX_TOP = 100
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "The store knows nothing of this wallet"}
}


def _address(chain: str, address: str) -> str:
    try:
        return normalize_address(chain, address)
    except LabelError as exc:
        raise InvalidParameterError("address" if chain in BLOCKCHAINS else "chain", str(exc)) from None


async def wallet_view(
    wallets: WalletStore, store: AlertReader, chain: str, address: str, history: int, alerts: int
) -> dict[str, Any] | None:
    """Everything the wallet page shows; None when the store knows nothing of the wallet.

    The lookups are independent, so they run side by side in the threadpool (a few ms in all).
    """
    now = datetime.now(UTC)
    label, latest, scores, alert_ids = await asyncio.gather(
        run_in_threadpool(wallets.label, chain, address),
        run_in_threadpool(wallets.latest, chain, address),
        run_in_threadpool(wallets.history, chain, address, history),
        run_in_threadpool(wallets.alerts, chain, address, alerts),
    )
    found = await asyncio.gather(*(run_in_threadpool(store.get, alert_id, now) for alert_id in alert_ids))
    if label is None and latest is None and not scores and not alert_ids:
        return None
    return {
        "chain": chain,
        "address": address,
        "label": label,
        "latest": latest,
        "history": scores,
        "alerts": [a for a in found if a is not None],  # an alert may expire before its reference
    }


def _wallet_endpoint(chain: str) -> Callable[..., Awaitable[Response]]:
    async def one_wallet(
        wallets: WalletsDep,
        store: StoreDep,
        address: str = Path(pattern=ADDRESS_PATTERNS[chain], description=f"A {chain} address"),
        history: int = Query(50, ge=1, le=500, description="How many scores of the history, newest first"),
        alerts: int = Query(20, ge=1, le=100, description="How many recent alerts"),
    ) -> Response:
        stored = _address(chain, address)
        view = await wallet_view(wallets, store, chain, stored, history, alerts)
        if view is None:
            detail = {"detail": f"no {chain} wallet {stored!r} is scored, labelled or named by an alert"}
            return Response(orjson.dumps(detail), 404, media_type=JSON)
        return Response(orjson.dumps(view), media_type=JSON)

    return one_wallet


def build_router() -> APIRouter:
    router = APIRouter(tags=["wallets"])

    @router.get(
        "/wallets/top",
        response_model=WalletPage,
        responses=ERROR_RESPONSES,
        summary="A chain's wallets by alpha, highest first",
    )
    async def top(
        wallets: WalletsDep,
        key: CursorKeyDep,
        chain: Blockchain = ChainQuery,
        limit: int = Query(DEFAULT_TOP, ge=1, le=MAX_TOP, description="Page size"),
        cursor_token: str | None = Query(
            None,
            alias="cursor",
            max_length=MAX_CURSOR_CHARS,
            description="`next_cursor` of the previous page",
        ),
    ) -> Response:
        """Wallets scored by MOD-004 with their percentile, win rate and trades, and their label if any.

        Pages with `cursor=<next_cursor>`; ranks continue from page to page.
        """
        position = None
        if cursor_token:
            try:
                position = wallet_cursor.decode(key, chain, cursor_token)
            except CursorError as exc:
                raise InvalidParameterError("cursor", str(exc)) from None
        try:
            rows, after = await run_in_threadpool(wallets.top, chain, limit, position)
        except WalletStoreError as exc:
            raise InvalidParameterError("cursor", str(exc)) from None
        body = {
            "chain": chain,
            "wallets": rows,
            "next_cursor": wallet_cursor.encode(key, chain, after) if after else None,
        }
        return Response(orjson.dumps(body), media_type=JSON)

    for chain in BLOCKCHAINS:  # one documented operation per chain: its address pattern is exact
        router.add_api_route(
            f"/wallets/{chain}/{{address}}",
            _wallet_endpoint(chain),
            methods=["GET"],
            response_model=WalletDetail,
            responses={**ERROR_RESPONSES, **NOT_FOUND},
            summary=f"One {chain} wallet: score history, label, recent alerts",
            operation_id=f"wallet_{chain}",
        )

    @router.get("/wallets/{chain}/{address}", include_in_schema=False)
    async def other_chain(chain: str) -> Response:
        raise InvalidParameterError("chain", f"unknown chain {chain[:40]!r}; known: {', '.join(BLOCKCHAINS)}")

    return router
