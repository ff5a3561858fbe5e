"""MOD-005 labeled-whales: a labelled fund, whale or market maker moving at least 100K USD on chain.

Per on-chain event (stateless, like MOD-008): transfers and swaps worth ``min_usd`` or more reach the
driver, where their ``from_address``/``to_address`` (transfers) and ``trader`` (swaps) are looked up in
the label book (:mod:`jobs.label_source`). A wallet whose entity_type is one of
``alert_entity_types`` raises ``known_whale_activity`` (≥ ``high_usd``: high), saying who, what, how
much, and whether it went to or came from an exchange (the counterparty's label): exchange inflow and
outflow is what traders read from it.

ONE alert per (blockchain, tx_hash, wallet): a transaction's swap is the wallet's move (its token
transfers are legs of it), else its largest transfer. The alert id comes from that triple, so a replayed
or re-read block rewrites the same item.

The module's table ``labeled_wallets`` is written by the label refresh (``jobs.batch.labels``), not by
finish(): :meth:`LabeledWhalesDetector.batch_table` gives ``coattail detect --tables`` its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from coattail.chains.labels import ENTITY_TYPES, WalletLabel, label_rows
from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams
from jobs.detectors.common import from_us, money
from jobs.framework.detector import ONCHAIN, BaseDetector, DetectorResult, convertible
from jobs.label_source import LabelConfig, LabelSource
from jobs.onchain_logic import canonical_pair, trim, usd_symbol, venue_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ALERT_TYPE = "known_whale_activity"
DECIMAL_FIELDS = ("amount", "amount_in", "amount_out", "usd_value")
TEXT_FIELDS = (
    "event_id", "blockchain", "tx_hash", "event_type", "protocol", "pool", "from_address", "to_address",
    "trader", "token_symbol", "token_in_symbol", "token_out_symbol",
)  # fmt: skip
Role = Literal["from", "to", "trader"]
Direction = Literal["to_exchange", "from_exchange"]


class LabeledWhalesParams(ModuleParams):
    label_files: list[str] = Field(default_factory=list)  # operator CSV/JSON files, merged in order
    min_usd: Decimal = Decimal(100_000)  # usd_value at or above: a labelled wallet's move alerts
    high_usd: Decimal = Decimal(1_000_000)  # at or above: high
    alert_entity_types: list[str] = Field(default_factory=lambda: ["fund", "whale", "market_maker"])
    reload_seconds: float = Field(300, ge=0)  # the stream re-reads labeled_wallets at most this often

    @field_validator("alert_entity_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in ENTITY_TYPES]
        if unknown:
            raise ValueError(f"unknown entity_type {unknown[0]!r}; known: {', '.join(ENTITY_TYPES)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> LabeledWhalesParams:
        if self.high_usd < self.min_usd:
            raise ValueError("high_usd must not be below min_usd")
        return self


class KnownWhaleDetails(BaseModel):
    blockchain: str
    wallet: str
    label: str
    entity_type: str
    role: Role
    counterparty: str | None
    counterparty_label: str | None
    direction: Direction | None
    event_id: str
    event_type: str
    tx_hash: str
    token_symbol: str | None
    amount: Decimal | None
    usd_value: Decimal


@dataclass(frozen=True)
class Move:
    """A labelled wallet in one event, and the event's facts the alert needs."""

    wallet: WalletLabel
    role: Role
    counterparty: str | None
    counterparty_label: WalletLabel | None
    row: dict[str, Any]
    usd: Decimal

    @property
    def direction(self) -> Direction | None:
        if self.counterparty_label is None or self.counterparty_label.entity_type != "exchange":
            return None
        return "from_exchange" if self.role == "to" else "to_exchange"

    def rank(self) -> tuple[bool, Decimal]:
        return (self.row["event_type"] == "swap", self.usd)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else trim(Decimal(value))


def traded(row: dict[str, Any]) -> tuple[str | None, Decimal | None]:
    """What moved: the transfer's token, or a swap's base token (the side that is not the quote)."""
    if row["event_type"] != "swap":
        return row["token_symbol"], _decimal(row["amount"])
    pair = canonical_pair(row["token_in_symbol"], row["token_out_symbol"])
    return pair.base_symbol, _decimal(row["amount_in"] if pair.base_is_in else row["amount_out"])


def amount_text(amount: Decimal | None, symbol: str | None) -> str:
    if amount is None:
        return f"some {symbol or 'tokens'}"
    shown = f"{amount:,.4f}".rstrip("0").rstrip(".") if amount < 1000 else f"{amount:,.0f}"
    return f"{shown} {symbol or 'tokens'}"


def who(label: WalletLabel | None, address: str | None) -> str:
    if label is not None:
        return f"{label.label} ({label.entity_type.replace('_', ' ')})"
    if not address:
        return "an unknown wallet"
    return address if len(address) <= 14 else f"{address[:8]}…{address[-4:]}"


def message(move: Move) -> str:
    row, wallet = move.row, move.wallet
    usd = f"{money(float(move.usd))} USD"
    chain = row["blockchain"]
    if move.role == "trader":
        given = amount_text(_decimal(row["amount_in"]), row["token_in_symbol"])
        got = amount_text(_decimal(row["amount_out"]), row["token_out_symbol"])
        where = f"{row['protocol']} on {chain}" if row["protocol"] else chain
        return f"{who(wallet, wallet.address)} swapped {given} for {got} ({usd}) on {where}"
    symbol, amount = traded(row)
    moved = f"{amount_text(amount, symbol)} ({usd})"
    other = who(move.counterparty_label, move.counterparty)
    text = (
        f"{who(wallet, wallet.address)} sent {moved} to {other} on {chain}"
        if move.role == "from"
        else f"{who(wallet, wallet.address)} received {moved} from {other} on {chain}"
    )
    if move.direction == "to_exchange":
        text += ": exchange inflow"
    elif move.direction == "from_exchange":
        text += ": exchange outflow"
    return text


class LabeledWhalesDetector(BaseDetector):
    module_id = "MOD-005"
    module_name = "labeled-whales"
    stateful = False
    reads = ONCHAIN
    panel = SymbolPanel(
        title="labelled whales", figures=(Figure("Last move", "usd_value", "USD"), Figure("Who", "label"))
    )
    params_model = LabeledWhalesParams
    row_model = WalletLabel  # labeled_wallets (written by the label refresh)
    details_model = KnownWhaleDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, LabeledWhalesParams)
        config = LabelConfig(tuple(self.params.label_files), self.params.reload_seconds, self.output_table())
        self.labels = LabelSource(settings, config)

    def partitioning(self) -> str:
        return ""  # unpartitioned (DESIGN.md): a few thousand rows, read whole

    def record_keys(self) -> tuple[str, ...]:
        return ("blockchain", "address")

    def batch_table(self) -> list[dict[str, Any]]:
        """The labels this run used, as ``labeled_wallets`` rows (``coattail detect --tables``)."""
        return label_rows(self.labels.book.rows())

    def process(self, events: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        if events.isStreaming:  # the stream reads labeled_wallets too; `coattail detect` the files only
            self.labels.refresh(events.sparkSession)
        candidate = F.col("event_type").isin("transfer", "swap") & (
            F.col("usd_value") >= F.lit(self.params.min_usd)
        )
        return (
            convertible(events, "block_timestamp")
            .where(candidate)
            .select(
                *TEXT_FIELDS,
                *(F.col(c).cast("string").alias(c) for c in DECIMAL_FIELDS),
                F.unix_micros("block_timestamp").alias("ts_us"),
            )
        )

    def moves(self, rows: list[dict[str, Any]]) -> list[Move]:
        """The alerting labelled wallet of each (blockchain, tx_hash, wallet), its best event each."""
        book, alerting = self.labels.book, set(self.params.alert_entity_types)
        best: dict[tuple[str, str, str], Move] = {}
        for row in sorted(rows, key=lambda r: (r["ts_us"], r["event_id"])):
            usd = _decimal(row["usd_value"])
            if usd is None or usd < self.params.min_usd or row["event_type"] not in ("transfer", "swap"):
                continue
            if row["event_type"] == "swap":
                sides: list[tuple[Role, str | None, str | None]] = [("trader", row["trader"], row["pool"])]
            else:
                sides = [
                    ("from", row["from_address"], row["to_address"]),
                    ("to", row["to_address"], row["from_address"]),
                ]
            for role, address, counterparty in sides:
                wallet = book.get(row["blockchain"], address)
                if wallet is None or wallet.entity_type not in alerting:
                    continue
                move = Move(wallet, role, counterparty, book.get(row["blockchain"], counterparty), row, usd)
                key = (row["blockchain"], row["tx_hash"], wallet.address)
                if key not in best or move.rank() > best[key].rank():
                    best[key] = move
        return list(best.values())

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        if ALERT_TYPE not in self.alert_types():
            return result
        for move in self.moves(rows):
            row, other = move.row, move.counterparty_label
            symbol, amount = traded(row)
            result.alerts.append(
                Alert.create(
                    module_id=self.module_id,
                    alert_type=ALERT_TYPE,
                    symbol=usd_symbol(symbol),
                    exchange=venue_name(row["blockchain"]),
                    severity="high" if move.usd >= self.params.high_usd else "medium",
                    detected_at=from_us(row["ts_us"]),
                    message=message(move)[:1000],
                    details=self.details(
                        blockchain=row["blockchain"],
                        wallet=move.wallet.address,
                        label=move.wallet.label,
                        entity_type=move.wallet.entity_type,
                        role=move.role,
                        counterparty=move.counterparty,
                        counterparty_label=None if other is None else other.label,
                        direction=move.direction,
                        event_id=row["event_id"],
                        event_type=row["event_type"],
                        tx_hash=row["tx_hash"],
                        token_symbol=symbol,
                        amount=amount,
                        usd_value=move.usd,
                    ),
                    evidence=(row["blockchain"], row["tx_hash"], move.wallet.address),
                    ttl=self.alert_ttl(),
                )
            )
        return result
