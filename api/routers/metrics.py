"""GET /metrics/{symbol}: the current picture of one symbol (seed §9.2), generic over the active modules.

Two reads, both one partition: a newest-first walk of the symbol's partition of symbol-time-index
(alert counts and each module's latest alert, whose figures the module's panel names), and the last
hour of the symbol's recent-windows partition (every window of every series the modules feed,
flagged or not), which the dashboard draws with the flagged windows marked.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ModulesDep, StoreDep, WindowsDep
from api.errors import ERROR_RESPONSES
from api.modules import ModuleView
from api.params import SinceQuery, parse_since
from api.schemas import SymbolMetrics
from coattail.contracts.trade import SYMBOL_PATTERN
from coattail.hotstore import SYMBOL_INDEX, AlertReader, StreamSpec, time_key
from coattail.hotstore.windows import WindowStore

MAX_ALERTS = 2000  # per request; beyond it the count is a lower bound ("complete": false)
CHART_PERIOD = timedelta(hours=1)  # the charts show every window of the last hour


def _json_number(value: Any) -> Any:
    # Details carry decimals as strings (contracts.codec); numbers and words pass as they are.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if value == value and abs(value) != float("inf") else None
    return str(value)


def _snapshot(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        **alert["details"],
        "detected_at": alert["detected_at"],
        "exchange": alert["exchange"],
        "severity": alert["severity"],
        "alert_id": alert["alert_id"],
        "alert_type": alert["alert_type"],
    }


def _module_entry(view: ModuleView, latest: dict[str, Any] | None, count: int) -> dict[str, Any]:
    snapshot = _snapshot(latest) if latest else None
    return {
        "module_id": view.module_id,
        "name": view.name,
        "title": view.panel.title,
        "alert_types": list(view.alert_types),
        "alert_count": count,
        "latest": snapshot,
        "figures": [
            {
                "label": f.label,
                "unit": f.unit,
                "value": _json_number(snapshot.get(f.field)) if snapshot else None,
            }
            for f in view.panel.figures
        ],
    }


def symbol_metrics(
    store: AlertReader, windows: WindowStore, views: list[ModuleView], symbol: str, since: datetime
) -> dict[str, Any]:
    now = datetime.now(UTC)
    stream = StreamSpec(f"symbol:{symbol}", SYMBOL_INDEX, "symbol", symbol)
    by_type: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    latest: dict[str, dict[str, Any]] = {}
    total = 0
    for alert in store.walk([stream], since, now, MAX_ALERTS):
        total += 1
        by_type[alert["alert_type"]] += 1
        by_severity[alert["severity"]] += 1
        by_module[alert["module_id"]] += 1
        latest.setdefault(alert["module_id"], alert)
    window_since = now - CHART_PERIOD
    active = {v.module_id for v in views}
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for point in windows.points(symbol, window_since, now):
        if point.module_id in active:
            series.setdefault((point.module_id, point.series), []).append(point.as_json())
    return {
        "symbol": symbol,
        "since": time_key(since),
        "generated_at": time_key(now),
        "window_since": time_key(window_since),
        "anomaly_count": total,
        "counts_by_type": dict(by_type),
        "counts_by_severity": dict(by_severity),
        "modules": [_module_entry(v, latest.get(v.module_id), by_module[v.module_id]) for v in views],
        "series": [
            {"module_id": module_id, "series": name, "points": points}
            for (module_id, name), points in sorted(series.items())
        ],
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
        store: StoreDep,
        windows: WindowsDep,
        modules: ModulesDep,
        symbol: str = Path(pattern=SYMBOL_PATTERN),
        since: str | None = SinceQuery,
    ) -> Response:
        """Per active module: its latest alert's figures and alert count; every window of the last hour."""
        since_dt = parse_since(since, datetime.now(UTC))
        body = await run_in_threadpool(symbol_metrics, store, windows, modules, symbol, since_dt)
        return Response(orjson.dumps(body), media_type="application/json")

    return router
