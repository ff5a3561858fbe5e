"""The hot alert store (seed §3.4), shared by the pipeline (writes) and the API (reads).

``table``: the table definition; ``codec``: Alert <-> item; ``paging``: newest-first pages and
cursors; ``interface``: the typed seam (:class:`AlertWriter`, :class:`AlertReader`); ``dynamodb`` and
``memory``: the implementations.
"""

from coattail.hotstore.codec import Item, alert_to_item, item_to_alert, item_to_json, stored_time, time_key
from coattail.hotstore.dynamodb import DynamoAlertStore, ensure_table, make_client
from coattail.hotstore.interface import AlertReader, AlertStore, AlertWriter, StoreUnavailableError
from coattail.hotstore.memory import MemoryAlertStore
from coattail.hotstore.paging import (
    DONE,
    Fetched,
    Page,
    Position,
    StreamSpec,
    stream_for_symbol,
    stream_for_type,
    streams_for,
)
from coattail.hotstore.table import (
    ALERTS_TABLE,
    SYMBOL_INDEX,
    TYPE_INDEX,
    IndexSpec,
    TableSpec,
    table_definition,
)

__all__ = [
    "ALERTS_TABLE",
    "DONE",
    "SYMBOL_INDEX",
    "TYPE_INDEX",
    "AlertReader",
    "AlertStore",
    "AlertWriter",
    "DynamoAlertStore",
    "Fetched",
    "IndexSpec",
    "Item",
    "MemoryAlertStore",
    "Page",
    "Position",
    "StoreUnavailableError",
    "StreamSpec",
    "TableSpec",
    "alert_to_item",
    "ensure_table",
    "item_to_alert",
    "item_to_json",
    "make_client",
    "stored_time",
    "stream_for_symbol",
    "stream_for_type",
    "streams_for",
    "table_definition",
    "time_key",
]
