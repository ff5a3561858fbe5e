"""MOD-004 wallet-scorer: each wallet's DEX trades scored by their returns at horizon H (1 h) over a
rolling 30 days (``alpha = win_rate × avg_return × √n / max_drawdown``), percentiles per chain, into
``wallet_scores``; a trade by a wallet at or above the 95th percentile raises high_alpha_wallet (99th:
high), a percentile move of 20 points between a wallet's scorings score_change (low).

One stateful operator per blockchain (``applyInPandasWithState``, event-time timeout on
``block_timestamp``) runs :func:`jobs.wallet_logic.advance_chain`: trades wait in the state until the
watermark passes their horizon, then the wallet is rescored (scored_at = that resolution time). Batch
mode (``applyInPandas``) runs the same function with every horizon the data covers resolved, so both
give the same rows. The operator emits ``(blockchain, kind, payload)`` with a JSON payload per score
or per trade of a high-alpha wallet; :meth:`finish` (driver) builds the rows and alerts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, Field, model_validator

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams
from jobs.compat import patch_apply_in_pandas_with_state
from jobs.detectors.common import from_us
from jobs.detectors.onchain import OnchainIngesterParams, short, usd_text
from jobs.framework.detector import ONCHAIN, BaseDetector, DetectorResult, convertible
from jobs.onchain_logic import DEFAULT_SYMBOL_ALIASES, trim, usd_symbol, venue_name
from jobs.wallet_logic import (
    DEFAULT_STABLECOINS,
    DEFAULT_WALLET_QUOTES,
    AlphaTrade,
    ChainEvent,
    ChainState,
    ScoreEvent,
    ScoreRules,
    advance_chain,
    next_due,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

INGESTER = "MOD-008"  # whose symbol aliases name on-chain alerts, when configured
OUTPUT_SCHEMA = "blockchain string, kind string, payload string"
STATE_SCHEMA = "state string"
DECIMALS = ("amount", "amount_in", "amount_out", "usd_value")
TEXTS = ("event_id", "event_type", "tx_hash", "trader", "token", "token_symbol", "token_in",
         "token_in_symbol", "token_out", "token_out_symbol")  # fmt: skip
MINUTE_MS, DAY_MS = 60_000, 86_400_000
if "pyspark" in sys.modules:  # the Python worker, when it unpickles the state function
    patch_apply_in_pandas_with_state()


class SmartMoneyParams(BaseModel):
    """Write the top wallets back as ``smart_money`` labels (MOD-005 enriches with them)."""

    enabled: bool = False
    min_percentile: float = Field(99, ge=0, le=100)
    max_wallets: int = Field(100, ge=1, description="per chain")


class WalletScorerParams(ModuleParams):
    horizon_minutes: int = Field(60, gt=0, le=7 * 24 * 60)
    lookback_days: int = Field(30, gt=0, le=366)
    min_trades: int = Field(5, ge=1)
    drawdown_floor: float = Field(0.01, gt=0)
    watermark_seconds: int = Field(60, ge=0, le=3600)
    high_alpha_percentile: float = Field(95, ge=0, le=100)
    very_high_alpha_percentile: float = Field(99, ge=0, le=100)
    score_change_points: float = Field(20, gt=0, le=100)
    # Which side of a swap is the quote, best first: the other side is the token traded.
    quote_priority: list[str] = Field(default_factory=lambda: list(DEFAULT_WALLET_QUOTES))
    stablecoins: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STABLECOINS)
    )  # stable↔stable: no trade
    # A reference price older than this at the time it is needed is no price (the trade is not scored).
    price_max_age_minutes: int = Field(15, gt=0, le=24 * 60)
    smart_money: SmartMoneyParams = SmartMoneyParams()

    @model_validator(mode="after")
    def _bands_in_order(self) -> Self:
        if self.very_high_alpha_percentile < self.high_alpha_percentile:
            raise ValueError("very_high_alpha_percentile must be at least high_alpha_percentile")
        return self

    def rules(self) -> ScoreRules:
        return ScoreRules(
            horizon_ms=self.horizon_minutes * MINUTE_MS,
            lookback_ms=self.lookback_days * DAY_MS,
            min_trades=self.min_trades,
            drawdown_floor=self.drawdown_floor,
            price_max_age_ms=self.price_max_age_minutes * MINUTE_MS,
            high_percentile=self.high_alpha_percentile,
            very_high_percentile=self.very_high_alpha_percentile,
            score_change_points=self.score_change_points,
            quote_priority=tuple(s.upper() for s in self.quote_priority),
            stablecoins=frozenset(s.upper() for s in self.stablecoins),
        )


class WalletScoreRow(BaseModel):
    """One row of ``wallet_scores``: a wallet's score at one time (percentile 0..100 on its chain)."""

    blockchain: str
    wallet: str
    scored_at: datetime
    trade_count: int
    win_rate: float
    avg_return: float
    max_drawdown: float
    alpha: float
    alpha_percentile: float


class HighAlphaWalletDetails(BaseModel):
    blockchain: str
    wallet: str
    alpha: float
    alpha_percentile: float
    win_rate: float
    trade_count: int
    event_id: str
    tx_hash: str
    side: str
    token_symbol: str | None
    usd_value: Decimal | None


class ScoreChangeDetails(BaseModel):
    blockchain: str
    wallet: str
    alpha: float
    alpha_percentile: float
    previous_percentile: float
    win_rate: float
    trade_count: int


def wallet_details(kind: str, **values: Any) -> dict[str, Any]:
    model = HighAlphaWalletDetails if kind == "high_alpha_wallet" else ScoreChangeDetails
    return model.model_validate(values).model_dump(mode="json")


def aliases_of(settings: Settings) -> dict[str, str]:
    """MOD-008's symbol aliases when configured (one naming for on-chain alerts), else its defaults."""
    if INGESTER in settings.modules and settings.modules[INGESTER].params:
        return dict(settings.module_params(INGESTER, OnchainIngesterParams).symbol_aliases)
    return dict(DEFAULT_SYMBOL_ALIASES)


class WalletScorerDetector(BaseDetector):
    module_id = "MOD-004"
    module_name = "wallet-scorer"
    stateful = True
    reads = ONCHAIN
    panel = SymbolPanel(
        title="wallets",
        figures=(Figure("Alpha percentile", "alpha_percentile"), Figure("Win rate", "win_rate")),
    )
    params_model = WalletScorerParams
    row_model = WalletScoreRow

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, WalletScorerParams)
        self.rules = self.params.rules()
        self.aliases = aliases_of(settings)

    def watermark_seconds(self) -> int:
        return self.params.watermark_seconds

    def partitioning(self) -> str:
        return "days(scored_at), blockchain"

    def record_keys(self) -> tuple[str, ...]:
        return ("blockchain", "wallet", "scored_at")

    def details(self, **values: Any) -> dict[str, Any]:
        return values  # two alert types, two models: wallet_details()

    def publish(self, hot: Any, records: list[dict[str, Any]]) -> None:
        """The rescored wallets to the wallet store (leaderboard and wallet pages)."""
        hot.wallets.put_scores(records)

    def process(self, events: DataFrame) -> DataFrame:
        return scorer_frame(events, self.rules, streaming=events.isStreaming)

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        alpha_type, change_type = self.alert_types()
        for row in sorted(rows, key=_order):
            p = json.loads(row["payload"])
            if row["kind"] == "score":
                self._score(row["blockchain"], p, change_type, result)
            else:
                self._alpha_trade(row["blockchain"], p, alpha_type, result)
        return result

    def _score(self, chain: str, p: dict[str, Any], alert_type: str, result: DetectorResult) -> None:
        at = from_us(p["at"] * 1000)
        record = score_record(chain, p)
        result.records.append(record)
        prev = p["prev"]
        if prev is None or abs(p["pct"] - prev) < self.params.score_change_points:
            return
        verb = "rose" if p["pct"] > prev else "fell"
        result.alerts.append(
            Alert.create(
                module_id=self.module_id,
                alert_type=alert_type,
                symbol=usd_symbol(p["token_symbol"], self.aliases),
                exchange=venue_name(chain),
                severity="low",
                detected_at=at,
                message=f"Wallet {short(p['wallet'])} on {chain} {verb} from the {prev:.0f}th to the "
                f"{p['pct']:.0f}th alpha percentile (alpha {p['alpha']:.2f}, win rate {p['win']:.0%} over "
                f"{p['n']} trades)",
                details=wallet_details(
                    alert_type,
                    blockchain=chain,
                    wallet=p["wallet"],
                    alpha=p["alpha"],
                    alpha_percentile=p["pct"],
                    previous_percentile=prev,
                    win_rate=p["win"],
                    trade_count=p["n"],
                ),
                evidence=(chain, p["wallet"], at),
                ttl=self.alert_ttl(),
            )
        )

    def _alpha_trade(self, chain: str, p: dict[str, Any], alert_type: str, result: DetectorResult) -> None:
        t = p["trade"]
        usd = None if t["usd_value"] is None else trim(Decimal(t["usd_value"]))
        result.alerts.append(
            Alert.create(
                module_id=self.module_id,
                alert_type=alert_type,
                symbol=usd_symbol(t["token_symbol"], self.aliases),
                exchange=venue_name(chain),
                severity=p["severity"],
                detected_at=from_us(t["ts_ms"] * 1000),
                message=f"High-alpha wallet {short(t['wallet'])} ({p['pct']:.0f}th percentile on {chain}, "
                f"win rate {p['win']:.0%} over {p['n']} trades) {'bought' if t['side'] == 'buy' else 'sold'} "
                f"{t['token_symbol'] or 'a token'} ({usd_text(usd)})",
                details=wallet_details(
                    alert_type,
                    blockchain=chain,
                    wallet=t["wallet"],
                    alpha=p["alpha"],
                    alpha_percentile=p["pct"],
                    win_rate=p["win"],
                    trade_count=p["n"],
                    event_id=t["event_id"],
                    tx_hash=t["tx_hash"],
                    side=t["side"],
                    token_symbol=t["token_symbol"],
                    usd_value=usd,
                ),
                evidence=(chain, t["wallet"], t["event_id"]),
                ttl=self.alert_ttl(),
            )
        )


def score_record(chain: str, p: dict[str, Any]) -> dict[str, Any]:
    """A ``wallet_scores`` row from a score payload."""
    return {
        "blockchain": chain,
        "wallet": p["wallet"],
        "scored_at": from_us(p["at"] * 1000),
        "trade_count": p["n"],
        "win_rate": p["win"],
        "avg_return": p["avg"],
        "max_drawdown": p["dd"],
        "alpha": p["alpha"],
        "alpha_percentile": p["pct"],
    }


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    p = json.loads(row["payload"])
    at = p["at"] if row["kind"] == "score" else p["trade"]["ts_ms"]
    who = p["wallet"] if row["kind"] == "score" else p["trade"]["event_id"]
    return (at, row["kind"], row["blockchain"], who)


def scorer_input(events: DataFrame, rules: ScoreRules) -> DataFrame:
    """The events the scorer reads: swaps (trades and pool prices) and valued non-dollar transfers."""
    from pyspark.sql import functions as F

    stables = sorted(rules.stablecoins)
    transfer = (
        (F.col("event_type") == "transfer")
        & F.col("usd_value").isNotNull()
        & ~F.upper(F.coalesce(F.col("token_symbol"), F.lit(""))).isin(*stables)
    )
    return (
        convertible(events, "block_timestamp")
        .where((F.col("event_type") == "swap") | transfer)
        .select(
            "blockchain",
            *TEXTS,
            "block_number",
            "log_index",
            *(F.col(c).cast("string").alias(c) for c in DECIMALS),
            F.floor(F.unix_micros("block_timestamp") / 1000).cast("long").alias("ts_ms"),
            "block_timestamp",  # carries the watermark
        )
    )


def scorer_frame(events: DataFrame, rules: ScoreRules, *, streaming: bool) -> DataFrame:
    """The operator over clean OnchainEvents, per blockchain (stream: with state; batch: one pass)."""
    from pyspark.sql import functions as F

    patch_apply_in_pandas_with_state()
    selected = scorer_input(events, rules)
    grouped = selected.groupBy("blockchain")
    if not streaming:
        # The stream's watermark is one for all chains: the batch resolves what the whole input covers.
        covered = selected.agg(F.max("ts_ms").alias("m")).collect()[0]["m"]
        return grouped.applyInPandas(_batch_fn(rules, covered), OUTPUT_SCHEMA)
    from pyspark.sql.streaming.state import GroupStateTimeout

    return grouped.applyInPandasWithState(
        _stream_fn(rules), OUTPUT_SCHEMA, STATE_SCHEMA, "Append", GroupStateTimeout.EventTimeTimeout
    )


# -- the operator (Python worker) -------------------------------------------------------------------


def _none(value: Any) -> Any:
    """pandas hands nulls over as None or NaN."""
    return None if value is None or value != value else value


def chain_events(pdf: pd.DataFrame) -> list[ChainEvent]:
    out = []
    for rec in pdf.to_dict("records"):
        rec = {k: _none(v) for k, v in rec.items()}
        dec = {k: None if rec[k] is None else Decimal(rec[k]) for k in DECIMALS}
        out.append(
            ChainEvent(
                int(rec["ts_ms"]), int(rec["block_number"]), int(rec["log_index"]), rec["event_id"],
                rec["event_type"], rec["tx_hash"], rec["trader"], rec["token"], rec["token_symbol"],
                dec["amount"], rec["token_in"], rec["token_in_symbol"], dec["amount_in"], rec["token_out"],
                rec["token_out_symbol"], dec["amount_out"], dec["usd_value"],
            )
        )  # fmt: skip
    return out


def score_payload(s: ScoreEvent) -> str:
    sc = s.score
    return json.dumps(
        {
            "wallet": s.wallet, "at": s.scored_at_ms, "n": sc.trade_count, "win": sc.win_rate,
            "avg": sc.avg_return, "dd": sc.max_drawdown, "alpha": sc.alpha, "pct": s.alpha_percentile,
            "prev": s.previous_percentile, "token_symbol": s.trigger.token_symbol,
        }
    )  # fmt: skip


def alpha_payload(a: AlphaTrade) -> str:
    t = a.trade
    return json.dumps(
        {
            "trade": {
                "ts_ms": t.ts_ms, "event_id": t.event_id, "wallet": t.wallet, "token_symbol": t.token_symbol,
                "side": t.side, "tx_hash": t.tx_hash,
                "usd_value": None if t.usd_value is None else str(t.usd_value),
            },
            "alpha": a.score.alpha, "pct": a.alpha_percentile, "win": a.score.win_rate,
            "n": a.score.trade_count, "severity": a.severity,
        }
    )  # fmt: skip


def _frame(key: tuple[Any, ...], scores: list[ScoreEvent], trades: list[AlphaTrade]) -> pd.DataFrame:
    import pandas as pd

    rows = [(key[0], "score", score_payload(s)) for s in scores]
    rows += [(key[0], "trade", alpha_payload(a)) for a in trades]
    return pd.DataFrame(rows, columns=["blockchain", "kind", "payload"])


def _batch_fn(rules: ScoreRules, covered_ms: int | None) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        events = chain_events(pdf)
        if covered_ms is None or not events:
            return _frame(key, [], [])
        step = advance_chain(ChainState(), events, covered_ms, rules)  # every horizon the data covers
        return _frame(key, step.scores, step.alpha_trades)

    return run


def _stream_fn(rules: ScoreRules) -> Any:
    def run(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        chain = ChainState.from_json(json.loads(state.get[0])) if state.exists else ChainState()
        events: list[ChainEvent] = []
        if not state.hasTimedOut:
            for pdf in pdfs:
                events += chain_events(pdf)
        step = advance_chain(chain, events, state.getCurrentWatermarkMs(), rules)
        state.update((json.dumps(chain.to_json()),))
        due = next_due(chain, rules)
        if due is not None:  # wake when the watermark passes the next check or horizon
            state.setTimeoutTimestamp(due)
        yield _frame(key, step.scores, step.alpha_trades)

    return run
