"""Contracts shared by every component: the trade and on-chain events on the streams and the alert record."""

from coattail.contracts.alert import Alert, Severity
from coattail.contracts.codec import ContractError, dumps, loads_alert, loads_onchain, loads_trade
from coattail.contracts.ids import alert_id, onchain_event_id, trade_event_id
from coattail.contracts.onchain import OnchainEvent
from coattail.contracts.trade import Side, TradeEvent

__all__ = [
    "Alert",
    "ContractError",
    "OnchainEvent",
    "Severity",
    "Side",
    "TradeEvent",
    "alert_id",
    "dumps",
    "loads_alert",
    "loads_onchain",
    "loads_trade",
    "onchain_event_id",
    "trade_event_id",
]
