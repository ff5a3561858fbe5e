"""The hot alert store (DynamoDB): table definition and writes (``table``), paged reads (``alerts``)."""

from api.store.alerts import AlertStore, Page, StoreUnavailableError, StreamSpec, make_client, streams_for
from api.store.table import (
    SYMBOL_INDEX,
    TYPE_INDEX,
    alert_to_item,
    ensure_table,
    item_to_alert,
    item_to_json,
    put_alerts,
    table_definition,
    time_key,
)

__all__ = [
    "SYMBOL_INDEX",
    "TYPE_INDEX",
    "AlertStore",
    "Page",
    "StoreUnavailableError",
    "StreamSpec",
    "alert_to_item",
    "ensure_table",
    "item_to_alert",
    "item_to_json",
    "make_client",
    "put_alerts",
    "streams_for",
    "table_definition",
    "time_key",
]
