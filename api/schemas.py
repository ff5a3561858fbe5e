"""Response models: they document the API (OpenAPI) and are what schemathesis checks answers against.

The hot paths return pre-serialised JSON (orjson) of exactly these shapes rather than validating each
alert again on the way out; the data was validated when the detector created it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from coattail.settings.modules import SeverityName


class AlertOut(BaseModel):
    alert_id: str
    alert_type: str
    module_id: str
    symbol: str
    exchange: str | None
    severity: SeverityName
    detected_at: str = Field(description="UTC, ISO-8601 with microseconds and Z (27 characters)")
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


class WindowPointOut(BaseModel):
    module_id: str
    series: str
    t: str = Field(description="window start, UTC ISO-8601")
    value: float
    flagged: bool = Field(description="the module flagged this window (an alert marker on the chart)")
    severity: SeverityName | None


class WindowSeries(BaseModel):
    module_id: str
    series: str = Field(description="what is plotted, e.g. 'volume binance' or 'price coinbase'")
    points: list[WindowPointOut] = Field(description="every window of the chart period, oldest first")


class FigureOut(BaseModel):
    label: str
    unit: str
    value: Any = Field(description="from the details of the module's latest alert; null when none")


class ModuleSummary(BaseModel):
    module_id: str
    name: str
    title: str
    alert_types: list[str]
    alert_count: int = Field(description="this module's unexpired alerts for the symbol since `since`")
    latest: dict[str, Any] | None = Field(description="the module's latest alert: details + time")
    figures: list[FigureOut] = Field(description="the figures the module's panel shows")


class SymbolMetrics(BaseModel):
    symbol: str
    since: str
    generated_at: str
    window_since: str = Field(description="start of the chart period (the last hour)")
    anomaly_count: int = Field(description="Unexpired alerts for the symbol since `since`")
    counts_by_type: dict[str, int]
    counts_by_severity: dict[str, int]
    modules: list[ModuleSummary] = Field(description="one entry per active module, in module order")
    series: list[WindowSeries] = Field(description="recent windows per module and series")
    complete: bool = Field(description="False when the period held more alerts than one request reads")


class Health(BaseModel):
    status: str
    table: str | None = None


class WalletLabelOut(BaseModel):
    label: str
    entity_type: str
    source: str = Field(description="where the label comes from (a public page, an operator file)")
    updated_at: str


class WalletScoreOut(BaseModel):
    scored_at: str = Field(description="UTC, ISO-8601 with microseconds and Z")
    alpha: float = Field(description="win_rate × avg_return × √trade_count / max_drawdown")
    alpha_percentile: float = Field(description="0..100 among the chain's scored wallets")
    win_rate: float
    trade_count: int
    avg_return: float
    max_drawdown: float


class WalletRankOut(WalletScoreOut):
    rank: int = Field(description="position on the chain's leaderboard, 1 = highest alpha")
    address: str
    label: WalletLabelOut | None


class WalletPage(BaseModel):
    chain: str
    wallets: list[WalletRankOut]
    next_cursor: str | None = Field(description="Opaque cursor for the next page; null on the last page")


class WalletDetail(BaseModel):
    chain: str
    address: str = Field(description="as stored: lower-case hex on Ethereum, base58 on Solana")
    label: WalletLabelOut | None
    latest: WalletScoreOut | None
    history: list[WalletScoreOut] = Field(description="scores, newest first")
    alerts: list[AlertOut] = Field(description="unexpired alerts naming the wallet, newest first")
