"""Contracts shared by every component: the trade event on the stream and the alert record."""

from coattail.contracts.alert import Alert, Severity
from coattail.contracts.codec import ContractError, dumps, loads_alert, loads_trade
from coattail.contracts.ids import alert_id, trade_event_id
from coattail.contracts.trade import Side, TradeEvent

__all__ = [
    "Alert",
    "ContractError",
    "Severity",
    "Side",
    "TradeEvent",
    "alert_id",
    "dumps",
    "loads_alert",
    "loads_trade",
    "trade_event_id",
]
