"""Response models: they document the API (OpenAPI) and are what schemathesis checks answers against.

The hot paths return pre-serialised JSON (orjson) of exactly these shapes rather than validating each
alert again on the way out; the data was validated when the detector created it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class BacktestRunOut(BaseModel):
    """A back-test run's summary (MOD-011); the batch step may add more keys (they are passed on)."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    backtest_date: str | None = Field(None, description="the day the run evaluates (YYYY-MM-DD)")
    start: str | None = Field(None, description="first detected_at of the alerts evaluated, UTC")
    end: str | None = Field(None, description="end of the evaluated period, UTC")
    as_of: str | None = Field(None, description="prices read as of this time: later horizons are pending")
    snapshot_id: int | str | None = Field(None, description="the raw_trades snapshot the prices come from")
    alerts_evaluated: int | None = Field(None, description="alerts with a horizon that elapsed and a price")
    pending: int | None = Field(None, description="alert horizons not elapsed yet: left for the next run")
    results: int = Field(description="how many result rows the run has")


class BacktestResultOut(BaseModel):
    """One ``backtest_results`` row: a module's record on a symbol at one horizon."""

    model_config = ConfigDict(extra="allow")

    backtest_date: str
    module_id: str
    symbol: str
    horizon: str = Field(description="`1h`, `4h` or `24h`")
    n: int = Field(description="resolved alerts")
    hit_rate: float | None = Field(description="share of resolved alerts whose implied direction came true")
    mean_return: float | None = Field(description="mean signed return (a fraction)")
    sharpe: float | None = Field(description="mean / sample std of the signed returns; null if n < 2")
    max_drawdown: float | None = Field(description="of the compounded signed returns, a fraction >= 0")
    pending: int | None = None
    unpriced: int | None = None


class BacktestOut(BaseModel):
    run: BacktestRunOut
    results: list[BacktestResultOut] = Field(description="by module, symbol and horizon")


class PredictionOut(BaseModel):
    """One ``predictive_scores`` row (MOD-010): p(|move| > 2 %) within 1 h, 2 h and 4 h."""

    model_config = ConfigDict(extra="allow")

    symbol: str
    scored_at: str = Field(description="end of the 15 min evaluation window, UTC")
    window_start: str | None = None
    p_1h: float | None
    p_2h: float | None
    p_4h: float | None
    features: dict[str, Any] | None = Field(None, description="the feature values the score came from")
    coefficients_version: str | None = None
    price: float | None = None


class Predictions(BaseModel):
    symbol: str
    predictions: list[PredictionOut] = Field(description="newest first")
