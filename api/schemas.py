"""Response models: they document the API (OpenAPI) and are what schemathesis checks answers against.

The hot paths return pre-serialised JSON (orjson) of exactly these shapes rather than validating each
alert again on the way out; the data was validated when the detector created it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class AlertOut(BaseModel):
    alert_id: str
    alert_type: str
    module_id: str
    symbol: str
    exchange: str | None
    severity: Literal["low", "medium", "high", "critical"]
    detected_at: str = Field(description="UTC, ISO-8601 with milliseconds and Z")
    message: str
    ttl_epoch: int
    details: dict[str, Any]


class AlertPage(BaseModel):
    items: list[AlertOut]
    count: int
    next: str | None = Field(description="Opaque cursor for the next page; null on the last page")
    since: str = Field(description="The lower bound on detected_at that this listing uses")


class AlertTypeOut(BaseModel):
    alert_type: str
    module_id: str
    module: str


class AlertTypes(BaseModel):
    tier: str
    alert_types: list[AlertTypeOut]


class Symbols(BaseModel):
    symbols: list[str]


class SeriesPoint(BaseModel):
    t: str
    value: float | None


class SymbolMetrics(BaseModel):
    symbol: str
    since: str
    generated_at: str
    anomaly_count: int = Field(description="Unexpired alerts for the symbol since `since`")
    counts_by_type: dict[str, int]
    counts_by_severity: dict[str, int]
    latest_volume: dict[str, Any] | None = Field(description="Latest MOD-001 volume alert: details + time")
    latest_spread: dict[str, Any] | None = Field(description="Latest MOD-003 spread alert: details + time")
    last_whale: dict[str, Any] | None = Field(description="Latest MOD-002 whale alert: details + time")
    volume_series: list[SeriesPoint] = Field(
        description="window_volume of recent volume alerts, oldest first"
    )
    spread_series: list[SeriesPoint] = Field(description="spread_pct of recent spread alerts, oldest first")
    complete: bool = Field(description="False when the period held more alerts than one request reads")


class Health(BaseModel):
    status: str
    table: str | None = None
