"""CEX reference trades for a run in event time: one ``binance`` ETH-USDT TradeEvent per step.

Each is at the path's price at the step's block time, so ``coattail detect`` values the chain's events
with the prices the pools followed and the wallet scorer reads P(t) and P(t + H) over the same span.
Small sizes (0.05-2 ETH): reference prices, not whale trades.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from coattail.contracts.codec import dumps
from coattail.contracts.trade import TradeEvent

EXCHANGE = "binance"
SYMBOL = "ETH-USDT"


class ReferenceTrades:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(f"cex/{seed}")
        self.trades: list[TradeEvent] = []

    def record(self, epoch_s: int, price: Decimal) -> None:
        self.add(epoch_s, price)

    def add(self, epoch_s: int, price: Decimal) -> TradeEvent:
        at = datetime.fromtimestamp(epoch_s, UTC)
        trade = TradeEvent.create(
            exchange=EXCHANGE,
            symbol=SYMBOL,
            trade_id=f"chainsim-{self.seed}-{epoch_s}",
            price=price,
            quantity=Decimal(str(round(self.rng.uniform(0.05, 2), 4))),
            side="buy" if self.rng.random() < 0.5 else "sell",
            timestamp=at,
            ingestion_timestamp=at,
        )
        self.trades.append(trade)
        return trade

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            self.write_to(out)

    def write_to(self, out: BinaryIO) -> None:
        for trade in self.trades:
            out.write(dumps(trade) + b"\n")
