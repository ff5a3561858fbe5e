"""GET /backtests/latest (MOD-011's latest run) and GET /predictions/{symbol} (MOD-010's scores).

Both read the analytics store (coattail.hotstore.analytics): a key lookup and a Query or two, never
the lake. Nothing stored yet is a 404 with the usual one-line detail, so the dashboard leaves the panel
out instead of drawing an empty one.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from api.deps import AnalyticsDep
from api.errors import ERROR_RESPONSES, Problem
from api.schemas import BacktestOut, Predictions
from coattail.contracts.trade import SYMBOL_PATTERN

JSON = "application/json"
DEFAULT_PREDICTIONS = 50
MAX_PREDICTIONS = 500


def _not_found(description: str) -> dict[int | str, dict[str, Any]]:
    return {404: {"model": Problem, "description": description}}


def _missing(detail: str) -> Response:
    return Response(orjson.dumps({"detail": detail}), 404, media_type=JSON)


def _prediction_json(row: dict[str, Any]) -> dict[str, Any]:
    """The stored row with its ``features`` JSON text (as the lake keeps it) opened up."""
    features = row.get("features")
    if isinstance(features, str):
        try:
            parsed = orjson.loads(features)
        except orjson.JSONDecodeError:
            parsed = None
        row = {**row, "features": parsed if isinstance(parsed, dict) else None}
    elif features is not None and not isinstance(features, dict):
        row = {**row, "features": None}
    return row


def build_router() -> APIRouter:
    router = APIRouter(tags=["analytics"])

    @router.get(
        "/backtests/latest",
        response_model=BacktestOut,
        responses={**ERROR_RESPONSES, **_not_found("No back-test has run yet")},
        summary="The latest back-test run and its results",
    )
    async def latest_backtest(analytics: AnalyticsDep) -> Response:
        """MOD-011's latest run: what it evaluated, and per module, symbol and horizon the number of
        resolved alerts, hit rate, mean signed return, Sharpe and max drawdown."""
        found = await run_in_threadpool(analytics.latest_backtest)
        if found is None:
            return _missing("no back-test has run yet")
        return Response(orjson.dumps(found), media_type=JSON)

    @router.get(
        "/predictions/{symbol}",
        response_model=Predictions,
        responses={**ERROR_RESPONSES, **_not_found("The symbol has no predictive score")},
        summary="A symbol's latest predictive scores, newest first",
    )
    async def predictions(
        analytics: AnalyticsDep,
        symbol: str = Path(pattern=SYMBOL_PATTERN, description="A symbol, e.g. `BTC-USDT`"),
        limit: int = Query(
            DEFAULT_PREDICTIONS, ge=1, le=MAX_PREDICTIONS, description="How many scores, newest first"
        ),
    ) -> Response:
        """MOD-010's scores of the symbol's 15 min windows: p(|move| > 2 %) within 1 h, 2 h and 4 h,
        and the features they came from."""
        rows = await run_in_threadpool(analytics.predictions, symbol, limit)
        if not rows:
            return _missing(f"no predictive score for {symbol}")
        body = {"symbol": symbol, "predictions": [_prediction_json(r) for r in rows]}
        return Response(orjson.dumps(body), media_type=JSON)

    return router
