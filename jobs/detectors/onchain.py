"""MOD-008 onchain-ingester: lands every clean OnchainEvent in ``onchain_events`` and alerts on single
events — a transfer worth more than 50K USD (large_transfer, > 1M high) and every DEX swap (dex_swap,
low; > 100K medium).

Stateless, per event: the on-chain alert query runs it on each micro-batch (hot store only) and the
on-chain lake path writes the clean events themselves to its table (:attr:`lands_input`) with the
same alerts, so the table is written once per micro-batch and never through the driver. Alert ids come
from the event id: a duplicate event rewrites the same item.

Details name who the addresses are (``from_label``, ``to_label``, ``trader_label``: the wallet label
registry's short label, or null) from the same label book as MOD-005 (:mod:`jobs.label_source`).

Alert names (DESIGN.md "Contracts"): ``symbol`` is the token's ``BASE-USD`` (WETH -> ETH-USD, see
:func:`jobs.onchain_logic.usd_symbol`); ``exchange`` is the chain for a transfer and the protocol for a
swap, spelled as an exchange name (``uniswap-v2`` -> ``uniswap_v2``: the Alert pattern has no hyphen).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from coattail.contracts import Alert
from coattail.contracts.onchain import OnchainEvent
from coattail.panels import Figure, SymbolPanel
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams, SeverityBands
from jobs.detectors.common import from_us, money
from jobs.framework.detector import ONCHAIN, BaseDetector, DetectorResult, convertible
from jobs.label_source import LabelSource
from jobs.onchain_logic import (
    DEFAULT_SYMBOL_ALIASES,
    OnchainBands,
    canonical_pair,
    classify_event,
    trim,
    usd_symbol,
    venue_name,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DECIMAL_FIELDS = ("amount", "amount_in", "amount_out", "usd_value")
TEXT_FIELDS = (
    "event_id", "blockchain", "tx_hash", "event_type", "protocol", "pool", "from_address", "to_address",
    "trader", "token", "token_symbol", "token_in_symbol", "token_out_symbol",
)  # fmt: skip


class OnchainIngesterParams(ModuleParams):
    large_transfer_bands: SeverityBands  # transfer usd_value strictly above -> large_transfer severity
    dex_swap_bands: SeverityBands  # swap usd_value strictly above -> severity (every swap is at least low)
    # Wrapped coins are named after their coin in alerts (the CEX instruments people watch).
    symbol_aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SYMBOL_ALIASES))

    def bands(self) -> OnchainBands:
        return OnchainBands(list(self.large_transfer_bands), list(self.dex_swap_bands))


class OnchainAlertDetails(BaseModel):
    event_id: str
    blockchain: str
    event_type: str
    tx_hash: str
    block_number: int
    log_index: int
    usd_value: Decimal | None
    # transfers
    token_symbol: str | None = None
    amount: Decimal | None = None
    from_address: str | None = None
    to_address: str | None = None
    # swaps
    protocol: str | None = None
    pool: str | None = None
    trader: str | None = None
    token_in_symbol: str | None = None
    amount_in: Decimal | None = None
    token_out_symbol: str | None = None
    amount_out: Decimal | None = None
    # who the addresses are (the label registry), null when nobody we know
    from_label: str | None = None
    to_label: str | None = None
    trader_label: str | None = None


def short(address: str | None) -> str:
    if not address:
        return "?"
    return address if len(address) <= 14 else f"{address[:8]}…{address[-4:]}"


def amount_text(value: Decimal | None, symbol: str | None) -> str:
    if value is None:
        return "?"
    shown = f"{value:,.4f}".rstrip("0").rstrip(".") if value < 1000 else f"{value:,.0f}"
    return f"{shown} {symbol or 'tokens'}"


def usd_text(value: Decimal | None) -> str:
    return "no USD price" if value is None else f"{money(float(value))} USD"


class OnchainIngesterDetector(BaseDetector):
    module_id = "MOD-008"
    module_name = "onchain-ingester"
    stateful = False
    reads = ONCHAIN
    lands_input = True
    panel = SymbolPanel(
        title="on-chain", figures=(Figure("Last event", "usd_value", "USD"), Figure("Kind", "event_type"))
    )
    params_model = OnchainIngesterParams
    row_model = OnchainEvent  # onchain_events is the contract itself (the Iceberg DDL derives from it)
    details_model = OnchainAlertDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, OnchainIngesterParams)
        self.labels = LabelSource(settings)  # MOD-005's files and table, also when MOD-005 is not active

    def partitioning(self) -> str:
        return "days(block_timestamp), blockchain"

    def record_keys(self) -> tuple[str, ...]:
        return ("event_id",)

    def process(self, events: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        if events.isStreaming:  # the stream reads labeled_wallets too; `coattail detect` the files only
            self.labels.refresh(events.sparkSession)
        # Only events that can alert reach the driver: transfers above the first band, and swaps.
        floor = Decimal(str(self.params.large_transfer_bands[0].above))
        candidate = (F.col("event_type") == "swap") | (
            (F.col("event_type") == "transfer") & (F.col("usd_value") > F.lit(floor))
        )
        return (
            convertible(events, "block_timestamp")
            .where(candidate)
            .select(
                *TEXT_FIELDS,
                "block_number",
                "log_index",
                *(F.col(c).cast("string").alias(c) for c in DECIMAL_FIELDS),
                F.unix_micros("block_timestamp").alias("ts_us"),
            )
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        bands, aliases = self.params.bands(), self.params.symbol_aliases
        known = set(self.alert_types())
        book = self.labels.book

        def label_of(blockchain: str, address: str | None) -> str | None:
            found = book.get(blockchain, address)
            return None if found is None else found.label

        for row in sorted(rows, key=lambda r: (r["ts_us"], r["event_id"])):
            usd = None if row["usd_value"] is None else trim(Decimal(row["usd_value"]))
            found = classify_event(row["event_type"], usd, bands)
            if found is None or found[0] not in known:
                continue
            alert_type, severity = found
            amounts = {
                f: None if row[f] is None else trim(Decimal(row[f]))
                for f in ("amount", "amount_in", "amount_out")
            }
            if alert_type == "large_transfer":
                symbol, venue = usd_symbol(row["token_symbol"], aliases), venue_name(row["blockchain"])
                moved = amount_text(amounts["amount"], row["token_symbol"])
                message = (
                    f"Large transfer of {usd_text(usd)} ({moved}) "
                    f"on {row['blockchain']}: {short(row['from_address'])} -> {short(row['to_address'])}"
                )
            else:
                traded = canonical_pair(row["token_in_symbol"], row["token_out_symbol"]).base_symbol
                symbol, venue = usd_symbol(traded, aliases), venue_name(row["protocol"] or row["blockchain"])
                message = (
                    f"DEX swap on {row['protocol']} ({row['blockchain']}): "
                    f"{amount_text(amounts['amount_in'], row['token_in_symbol'])} -> "
                    f"{amount_text(amounts['amount_out'], row['token_out_symbol'])} ({usd_text(usd)}) "
                    f"by {short(row['trader'])}"
                )
            transfer = alert_type == "large_transfer"
            result.alerts.append(
                Alert.create(
                    module_id=self.module_id,
                    alert_type=alert_type,
                    symbol=symbol,
                    exchange=venue,
                    severity=severity,
                    detected_at=from_us(row["ts_us"]),
                    message=message[:1000],
                    details=self.details(
                        event_id=row["event_id"],
                        blockchain=row["blockchain"],
                        event_type=row["event_type"],
                        tx_hash=row["tx_hash"],
                        block_number=int(row["block_number"]),
                        log_index=int(row["log_index"]),
                        usd_value=usd,
                        **(
                            {
                                "token_symbol": row["token_symbol"],
                                "amount": amounts["amount"],
                                "from_address": row["from_address"],
                                "to_address": row["to_address"],
                                "from_label": label_of(row["blockchain"], row["from_address"]),
                                "to_label": label_of(row["blockchain"], row["to_address"]),
                            }
                            if transfer
                            else {
                                "protocol": row["protocol"],
                                "pool": row["pool"],
                                "trader": row["trader"],
                                "trader_label": label_of(row["blockchain"], row["trader"]),
                                "token_in_symbol": row["token_in_symbol"],
                                "amount_in": amounts["amount_in"],
                                "token_out_symbol": row["token_out_symbol"],
                                "amount_out": amounts["amount_out"],
                            }
                        ),
                    ),
                    evidence=(row["event_id"],),
                    ttl=self.alert_ttl(),
                )
            )
        return result
