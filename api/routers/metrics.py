"""GET /metrics/{symbol}: the current picture of one symbol (seed §9.2), aggregated from its alerts.

One newest-first walk of the symbol's partition of symbol-time-index gives the counts and the latest
alert of each detector. The "latest volume window" is the latest *flagged* window (MOD-001 alerts):
unflagged windows live in the lake's volume_aggregates table, not in the hot store.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from api.deps import StoreDep
from api.errors import ERROR_RESPONSES
from api.params import SinceQuery, parse_since
from api.schemas import SymbolMetrics
from api.store import AlertStore, StreamSpec
from api.store.table import SYMBOL_INDEX, display_time, time_key
from coattail.contracts.trade import SYMBOL_PATTERN

MAX_ALERTS = 2000  # per request; beyond it the count is a lower bound ("complete": false)
SERIES_POINTS = 60
VOLUME, WHALE, SPREAD = "MOD-001", "MOD-002", "MOD-003"
_SERIES_FIELD = {VOLUME: "window_volume", SPREAD: "spread_pct"}


def _number(value: Any) -> float | None:
    # Details may carry decimals as strings (contracts.codec); the chart only needs a float.
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None


def _snapshot(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        **alert["details"],
        "detected_at": alert["detected_at"],
        "exchange": alert["exchange"],
        "severity": alert["severity"],
        "alert_id": alert["alert_id"],
    }


def symbol_metrics(store: AlertStore, symbol: str, since: datetime) -> dict[str, Any]:
    now = datetime.now(UTC)
    stream = StreamSpec(f"symbol:{symbol}", SYMBOL_INDEX, "symbol", symbol)
    by_type: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    latest: dict[str, dict[str, Any]] = {}
    series: dict[str, list[dict[str, Any]]] = {VOLUME: [], SPREAD: []}
    total = 0
    for alert in store.walk([stream], since, now, MAX_ALERTS):
        total += 1
        by_type[alert["alert_type"]] += 1
        by_severity[alert["severity"]] += 1
        module = alert["module_id"]
        latest.setdefault(module, alert)
        if module in series and len(series[module]) < SERIES_POINTS:
            point = alert["details"].get("window_start") or alert["detected_at"]
            value = _number(alert["details"].get(_SERIES_FIELD[module]))
            series[module].append({"t": str(point), "value": value})
    return {
        "symbol": symbol,
        "since": display_time(time_key(since)),
        "generated_at": display_time(time_key(now)),
        "anomaly_count": total,
        "counts_by_type": dict(by_type),
        "counts_by_severity": dict(by_severity),
        "latest_volume": _snapshot(latest[VOLUME]) if VOLUME in latest else None,
        "latest_spread": _snapshot(latest[SPREAD]) if SPREAD in latest else None,
        "last_whale": _snapshot(latest[WHALE]) if WHALE in latest else None,
        "volume_series": series[VOLUME][::-1],
        "spread_series": series[SPREAD][::-1],
        "complete": total < MAX_ALERTS,
    }


def build_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics/{symbol}",
        response_model=SymbolMetrics,
        responses=ERROR_RESPONSES,
        summary="Current state of a symbol",
    )
    async def get_symbol_metrics(
        store: StoreDep, symbol: str = Path(pattern=SYMBOL_PATTERN), since: str | None = SinceQuery
    ) -> Response:
        """Latest volume window, latest spread, anomaly count in the period and the last whale trade."""
        since_dt = parse_since(since, datetime.now(UTC))
        body = await run_in_threadpool(symbol_metrics, store, symbol, since_dt)
        return Response(orjson.dumps(body), media_type="application/json")

    return router
