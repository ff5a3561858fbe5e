"""MOD-009 dex-tracker: every swap described (pair, amounts, execution price, price impact) into
``dex_trades``, large swaps alerted (large_dex_swap), and 60 s windows per pool whose reserve value
moves by more than 10 % alerted (liquidity_change).

One stateful operator per pool (``applyInPandasWithState``, event-time timeout on ``block_timestamp``)
runs :func:`jobs.onchain_logic.advance_pool`: a swap's row and alert leave in the micro-batch that
brought it (no waiting for its window), a window when the watermark closes it. Batch mode
(``applyInPandas``) runs the same function with every window closed. The operator emits
``(blockchain, pool, kind, payload)`` with a JSON payload per swap or window; :meth:`finish` (driver)
applies the thresholds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel
from coattail.settings import ConfigError, Settings
from coattail.settings.modules import ModuleParams, SeverityBands
from jobs.compat import patch_apply_in_pandas_with_state
from jobs.detectors.common import from_us, iso, money
from jobs.detectors.onchain import OnchainIngesterParams, short
from jobs.framework.detector import ONCHAIN, BaseDetector, DetectorResult, convertible
from jobs.onchain_logic import (
    DEFAULT_QUOTE_PRIORITY,
    LIQUIDITY_EVENTS,
    LargeSwapRule,
    PoolEvent,
    PoolState,
    PoolWindow,
    advance_pool,
    canonical_pair,
    large_swap_severity,
    liquidity_severity,
    swap_facts,
    trim,
    usd_symbol,
    venue_name,
    window_liquidity,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

INGESTER = "MOD-008"  # whose symbol aliases name the alerts (one naming for both on-chain modules)
OUTPUT_SCHEMA = "blockchain string, pool string, kind string, payload string"
STATE_SCHEMA = "state string"
DECIMALS = (
    "amount_in", "amount_out", "reserve_in", "reserve_out", "price_before", "price_after", "usd_value",
)  # fmt: skip
TEXTS = ("event_id", "event_type", "protocol", "tx_hash", "trader", "token_in", "token_out",
         "token_in_symbol", "token_out_symbol")  # fmt: skip
if "pyspark" in sys.modules:  # the Python worker, when it unpickles the state function
    patch_apply_in_pandas_with_state()


class DexTrackerParams(ModuleParams):
    window_seconds: int = Field(60, gt=0, le=3600)
    watermark_seconds: int = Field(30, ge=0, le=3600)
    large_swap_bands: SeverityBands  # swap usd_value strictly above -> large_dex_swap severity
    high_impact_pct: float = Field(1.0, ge=0, description="a large swap whose price impact % is above: high")
    liquidity_bands: SeverityBands  # |reserve value change %| of a window strictly above -> severity
    # Which side of a pair is the quote, best first (unlisted tokens: by name).
    quote_priority: list[str] = Field(default_factory=lambda: list(DEFAULT_QUOTE_PRIORITY))

    def rule(self) -> LargeSwapRule:
        return LargeSwapRule(list(self.large_swap_bands), Decimal(str(self.high_impact_pct)))


class DexTradeRow(BaseModel):
    """One row of ``dex_trades``: a swap as MOD-009 sees it, with the alert it raised (if any)."""

    event_id: str
    blockchain: str
    protocol: str
    pool: str
    pair: str  # BASE/QUOTE in canonical order
    side: str  # buy | sell of the base token (the trader's view)
    trader: str | None
    tx_hash: str
    block_number: int
    log_index: int
    swap_timestamp: datetime
    token_in: str
    token_out: str
    amount_in: Decimal
    amount_out: Decimal
    base_amount: Decimal
    quote_amount: Decimal
    execution_price: Decimal | None  # quote per base
    price_before: Decimal | None
    price_after: Decimal | None
    price_impact_pct: Decimal | None
    usd_value: Decimal | None
    alert_id: str | None
    severity: str | None


class LargeDexSwapDetails(BaseModel):
    event_id: str
    blockchain: str
    pool: str
    pair: str
    side: str
    trader: str | None
    usd_value: Decimal
    base_amount: Decimal
    quote_amount: Decimal
    execution_price: Decimal | None
    price_impact_pct: Decimal | None
    tx_hash: str


class LiquidityChangeDetails(BaseModel):
    blockchain: str
    pool: str
    pair: str
    window_start: str
    window_end: str
    change_pct: Decimal
    value_start_usd: Decimal
    value_end_usd: Decimal
    volume_usd: Decimal
    swaps: int
    liquidity_events: int


def dex_details(kind: str, **values: Any) -> dict[str, Any]:
    model = LargeDexSwapDetails if kind == "large_dex_swap" else LiquidityChangeDetails
    return model.model_validate(values).model_dump(mode="json")


def symbols_of(settings: Settings) -> dict[str, str]:
    if INGESTER not in settings.modules:
        raise ConfigError(f"{INGESTER} must be configured: MOD-009 reads its events and names")
    return dict(settings.module_params(INGESTER, OnchainIngesterParams).symbol_aliases)


class DexTrackerDetector(BaseDetector):
    module_id = "MOD-009"
    module_name = "dex-tracker"
    stateful = True
    reads = ONCHAIN
    panel = SymbolPanel(
        title="DEX",
        figures=(Figure("Last large swap", "usd_value", "USD"), Figure("Impact %", "price_impact_pct")),
    )
    params_model = DexTrackerParams
    row_model = DexTradeRow

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, DexTrackerParams)
        self.aliases = symbols_of(settings)

    def watermark_seconds(self) -> int:
        return self.params.watermark_seconds

    def partitioning(self) -> str:
        return "days(swap_timestamp), blockchain, protocol"

    def record_keys(self) -> tuple[str, ...]:
        return ("event_id",)

    def details(self, **values: Any) -> dict[str, Any]:
        return values  # two alert types, two models: dex_details()

    def process(self, events: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        patch_apply_in_pandas_with_state()
        pool_events = (
            convertible(events, "block_timestamp")
            .where(F.col("event_type").isin("swap", *LIQUIDITY_EVENTS) & F.col("pool").isNotNull())
            .select(
                "blockchain",
                "pool",
                *TEXTS,
                "block_number",
                "log_index",
                *(F.col(c).cast("string").alias(c) for c in DECIMALS),
                F.floor(F.unix_micros("block_timestamp") / 1000).cast("long").alias("ts_ms"),
                "block_timestamp",  # carries the watermark
            )
        )
        grouped = pool_events.groupBy("blockchain", "pool")
        window_ms = self.params.window_seconds * 1000
        if not events.isStreaming:
            return grouped.applyInPandas(_batch_fn(window_ms), OUTPUT_SCHEMA)
        from pyspark.sql.streaming.state import GroupStateTimeout

        return grouped.applyInPandasWithState(
            _stream_fn(window_ms), OUTPUT_SCHEMA, STATE_SCHEMA, "Append", GroupStateTimeout.EventTimeTimeout
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        large_type, liquidity_type = self.alert_types()
        for row in sorted(rows, key=_order):
            payload = json.loads(row["payload"])
            if row["kind"] == "swap":
                self._swap(row, payload, large_type, result)
            else:
                self._window(row, payload, liquidity_type, result)
        return result

    def _swap(self, row: dict[str, Any], p: dict[str, Any], alert_type: str, result: DetectorResult) -> None:
        dec = {k: None if p.get(k) is None else trim(Decimal(p[k])) for k in DECIMALS}
        facts = swap_facts(
            p["token_in_symbol"], p["token_out_symbol"], dec["amount_in"], dec["amount_out"],  # type: ignore[arg-type]
            dec["price_before"], dec["price_after"], self.params.quote_priority,
        )  # fmt: skip
        at, usd = from_us(p["ts_us"]), dec["usd_value"]
        severity = large_swap_severity(usd, facts.price_impact_pct, self.params.rule())
        alert = None
        if severity is not None and usd is not None:
            impact = (
                "" if facts.price_impact_pct is None else f", price impact {facts.price_impact_pct:.2f} %"
            )
            alert = Alert.create(
                module_id=self.module_id,
                alert_type=alert_type,
                symbol=usd_symbol(facts.pair.base_symbol, self.aliases),
                exchange=venue_name(p["protocol"]),
                severity=severity,
                detected_at=at,
                message=f"Large DEX {facts.side} of {money(float(usd))} USD on {p['protocol']} "
                f"{facts.pair.name}: {facts.base_amount:,.4f} {facts.pair.base_symbol} at "
                f"{_price(facts.execution_price)} {facts.pair.quote_symbol}{impact} by {short(p['trader'])}",
                details=dex_details(
                    alert_type,
                    event_id=p["event_id"],
                    blockchain=row["blockchain"],
                    pool=row["pool"],
                    pair=facts.pair.name,
                    side=facts.side,
                    trader=p["trader"],
                    usd_value=usd,
                    base_amount=facts.base_amount,
                    quote_amount=facts.quote_amount,
                    execution_price=facts.execution_price,
                    price_impact_pct=facts.price_impact_pct,
                    tx_hash=p["tx_hash"],
                ),
                evidence=(p["event_id"],),
                ttl=self.alert_ttl(),
            )
            result.alerts.append(alert)
        result.records.append(
            {
                "event_id": p["event_id"],
                "blockchain": row["blockchain"],
                "protocol": p["protocol"],
                "pool": row["pool"],
                "pair": facts.pair.name,
                "side": facts.side,
                "trader": p["trader"],
                "tx_hash": p["tx_hash"],
                "block_number": int(p["block_number"]),
                "log_index": int(p["log_index"]),
                "swap_timestamp": at,
                "token_in": p["token_in"],
                "token_out": p["token_out"],
                "amount_in": dec["amount_in"],
                "amount_out": dec["amount_out"],
                "base_amount": facts.base_amount,
                "quote_amount": facts.quote_amount,
                "execution_price": facts.execution_price,
                "price_before": dec["price_before"],
                "price_after": dec["price_after"],
                "price_impact_pct": facts.price_impact_pct,
                "usd_value": usd,
                "alert_id": None if alert is None else alert.alert_id,
                "severity": severity,
            }
        )

    def _window(
        self, row: dict[str, Any], p: dict[str, Any], alert_type: str, result: DetectorResult
    ) -> None:
        change = None if p["change_pct"] is None else Decimal(p["change_pct"])
        severity = liquidity_severity(change, list(self.params.liquidity_bands))
        if severity is None or change is None:
            return
        start, end = from_us(p["start_ms"] * 1000), from_us(p["end_ms"] * 1000)
        pair = canonical_pair(p["symbol0"], p["symbol1"], self.params.quote_priority)
        value_start, value_end = Decimal(p["value_start_usd"]), Decimal(p["value_end_usd"])
        verb = "grew" if change > 0 else "fell"
        result.alerts.append(
            Alert.create(
                module_id=self.module_id,
                alert_type=alert_type,
                symbol=usd_symbol(pair.base_symbol, self.aliases),
                exchange=venue_name(p["protocol"]),
                severity=severity,
                detected_at=end,
                message=f"Liquidity of {p['protocol']} {pair.name} pool {short(row['pool'])} {verb} "
                f"{abs(change):.1f} % in {self.params.window_seconds} s: {money(float(value_start))} -> "
                f"{money(float(value_end))} USD",
                details=dex_details(
                    alert_type,
                    blockchain=row["blockchain"],
                    pool=row["pool"],
                    pair=pair.name,
                    window_start=iso(start),
                    window_end=iso(end),
                    change_pct=change,
                    value_start_usd=value_start,
                    value_end_usd=value_end,
                    volume_usd=Decimal(p["volume_usd"]),
                    swaps=p["swaps"],
                    liquidity_events=p["liquidity_events"],
                ),
                evidence=(row["blockchain"], row["pool"], start),
                ttl=self.alert_ttl(),
            )
        )


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    p = json.loads(row["payload"])
    return (
        p.get("ts_us", p.get("end_ms", 0) * 1000),
        row["kind"],
        row["blockchain"],
        row["pool"],
        p.get("event_id", ""),
    )


def _price(value: Decimal | None) -> str:
    return "?" if value is None else f"{value:,.6g}" if value < 1 else f"{value:,.4f}"


# -- the operator (Python worker) -------------------------------------------------------------------


def _none(value: Any) -> Any:
    """pandas hands nulls over as None or NaN."""
    return None if value is None or value != value else value


def _events(pdf: pd.DataFrame) -> tuple[list[PoolEvent], dict[str, dict[str, Any]]]:
    """A batch's pool events, and each one's full fields by event id (for its swap row)."""
    events, fields = [], {}
    for rec in pdf.to_dict("records"):
        rec = {k: _none(v) for k, v in rec.items()}
        dec = {k: None if rec[k] is None else Decimal(rec[k]) for k in DECIMALS}
        events.append(
            PoolEvent(
                int(rec["ts_ms"]),
                int(rec["block_number"]),
                int(rec["log_index"]),
                rec["event_id"],
                rec["event_type"],
                rec["token_in"],
                rec["token_out"],
                Decimal(rec["amount_in"]),  # quality: a swap/liquidity event has both amounts
                Decimal(rec["amount_out"]),
                dec["reserve_in"],
                dec["reserve_out"],
                dec["usd_value"],
            )
        )
        fields[rec["event_id"]] = rec
    return events, fields


def _meta(meta: dict[str, Any], fields: dict[str, dict[str, Any]]) -> None:
    """What a pool's window alert needs later: its protocol and token symbols (learned as events come)."""
    for rec in fields.values():
        meta["protocol"] = rec["protocol"] or meta.get("protocol")
        symbols = meta.setdefault("symbols", {})
        for token, symbol in (
            (rec["token_in"], rec["token_in_symbol"]),
            (rec["token_out"], rec["token_out_symbol"]),
        ):
            if symbol:
                symbols[token] = symbol


def _swap_payload(event: PoolEvent, rec: dict[str, Any]) -> str:
    return json.dumps(
        {
            **{k: rec[k] for k in (*TEXTS, *DECIMALS)},
            "block_number": event.block_number,
            "log_index": event.log_index,
            "ts_us": event.ts_ms * 1000 if rec.get("ts_us") is None else rec["ts_us"],
        }
    )


def _window_payload(window: PoolWindow, meta: dict[str, Any]) -> str:
    w = window_liquidity(window)
    tokens = sorted({t for e in window.events for t in (e.token_in, e.token_out)})
    symbols = meta.get("symbols", {})
    names = [symbols.get(t) for t in tokens] + [None, None]
    return json.dumps(
        {
            "start_ms": window.window_start_ms,
            "end_ms": window.window_end_ms,
            "protocol": meta.get("protocol") or "unknown",
            "symbol0": names[0],
            "symbol1": names[1],
            "swaps": w.swaps,
            "liquidity_events": w.liquidity_events,
            "volume_usd": str(w.volume_usd),
            "unpriced_swaps": w.unpriced_swaps,
            "value_start_usd": None if w.value_start_usd is None else str(w.value_start_usd),
            "value_end_usd": None if w.value_end_usd is None else str(w.value_end_usd),
            "change_pct": None if w.change_pct is None else str(w.change_pct),
        }
    )


def _frame(key: tuple[Any, ...], rows: list[tuple[str, str]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([(key[0], key[1], kind, payload) for kind, payload in rows],
                        columns=["blockchain", "pool", "kind", "payload"])  # fmt: skip


def _outputs(
    accepted: list[PoolEvent], closed: list[PoolWindow], fields: dict[str, Any], meta: dict[str, Any]
) -> list[tuple[str, str]]:
    out = [("swap", _swap_payload(e, fields[e.event_id])) for e in accepted if e.event_type == "swap"]
    return out + [("window", _window_payload(w, meta)) for w in closed]


def _batch_fn(window_ms: int) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        events, fields = _events(pdf)
        meta: dict[str, Any] = {}
        _meta(meta, fields)
        step = advance_pool(PoolState(), events, None, window_ms=window_ms)
        return _frame(key, _outputs(step.accepted, step.closed, fields, meta))

    return run


def _stream_fn(window_ms: int) -> Any:
    def run(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        saved = json.loads(state.get[0]) if state.exists else {"pool": PoolState().to_json(), "meta": {}}
        current, meta = PoolState.from_json(saved["pool"]), saved["meta"]
        events: list[PoolEvent] = []
        fields: dict[str, dict[str, Any]] = {}
        if not state.hasTimedOut:
            for pdf in pdfs:
                got, more = _events(pdf)
                events += got
                fields |= more
        _meta(meta, fields)
        step = advance_pool(current, events, state.getCurrentWatermarkMs(), window_ms=window_ms)
        state.update((json.dumps({"pool": current.to_json(), "meta": meta}),))
        if current.open:  # wake when the watermark passes the oldest open window's end
            state.setTimeoutTimestamp(min(current.open) + window_ms)
        yield _frame(key, _outputs(step.accepted, step.closed, fields, meta))

    return run
