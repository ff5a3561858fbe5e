"""What an exchange module hands the registry: one :class:`ExchangeSpec` with everything it owns."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from coattail.settings.connectors import ConnectorSettingsBase
from connectors.trade import Trade

if TYPE_CHECKING:
    from connectors.base import BaseConnector
    from connectors.rest import RestClient


class ExchangeSettings(ConnectorSettingsBase):
    """What every exchange's settings model has (each adds its own fields and ``type`` literal)."""

    kind: Literal["cex"] = "cex"
    ws_url: str = ""
    rest_url: str = ""
    reconnect_after_hours: float = Field(23, gt=0, le=24)  # planned reconnect (Binance drops at 24 h)


class Normalizer(Protocol):
    """Pure raw message -> trades of one exchange (replay, normalize CLI, connectors)."""

    exchange: str

    def message(self, msg: Any, received_at: str) -> list[Trade]: ...


@dataclass(frozen=True)
class SimTrade:
    """A simulated trade, before an exchange renders it as its own raw message."""

    symbol: str
    t_us: int  # trade time, epoch microseconds
    price: Decimal
    qty: Decimal
    taker: str  # buy | sell


@dataclass
class SimCounters:
    """Per-instrument counters the simulator keeps (trade ids) and a renderer may advance (sequences)."""

    next_id: int
    next_seq: int


@dataclass(frozen=True)
class Rendered:
    """One trade as the exchange's raw message, with what the truth file needs from it."""

    raw: dict[str, Any]
    event_key: str  # the trade id text the normaliser derives the event_id from
    ts_us: int  # the trade time as the exchange reports it (epoch microseconds)
    price_text: str
    qty_text: str


@dataclass(frozen=True)
class ExchangeSpec:
    """An exchange module's parts, as the registry map holds them."""

    name: str
    settings_model: type[ConnectorSettingsBase]
    connector: type[BaseConnector]
    # Offline normaliser from the instruments known up front (replay, normalize CLI, simulator checks).
    normalizer: Callable[[Iterable[str]], Normalizer]
    # REST client (with the exchange's rate-limit rules) from its settings: gap fill and backfill.
    rest_client: Callable[[ConnectorSettingsBase], RestClient]
    # Simulator: a trade as this exchange's raw message (and the non-trade messages between trades).
    render: Callable[[SimTrade, int, SimCounters, random.Random], Rendered]
    idle_messages: Callable[[str, SimCounters, int, int], list[tuple[int, dict[str, Any]]]] = field(
        default=lambda symbol, counters, t0, t1: []
    )
    # The exchange's native spelling of a BASE-QUOTE symbol (``SYMBOLS`` may use it).
    native: Callable[[str], str] = field(default=lambda symbol: symbol)

    def settings_of(self, entry: ConnectorSettingsBase) -> Any:
        """``entry`` as this exchange's settings model (validated again if it was kept unchecked)."""
        if isinstance(entry, self.settings_model):
            return entry
        return self.settings_model.model_validate(entry.model_dump())


@dataclass(frozen=True)
class ChainSpec:
    """A chain module's parts, as the registry map holds them (chains are not exchanges: no symbols, no
    REST rate rules, no simulator renderer). The connector and normaliser are named, not imported:
    web3 alone takes ~2 s to import, and every settings load reads this map."""

    name: str
    settings_model: type[ConnectorSettingsBase]
    connector_path: str  # "module:Class"; Class(settings, reconnect, *, registry, book, metrics, ...)
    normalizer_path: str  # "module:Class"; Class(registry, book) with normalize_line(obj) -> events

    def settings_of(self, entry: ConnectorSettingsBase) -> Any:
        if isinstance(entry, self.settings_model):
            return entry
        return self.settings_model.model_validate(entry.model_dump())

    def connector(self) -> Any:
        return _load(self.connector_path)

    def normalizer(self, registry: Any, book: Any = None) -> Any:
        return _load(self.normalizer_path)(registry, book)


def _load(path: str) -> Any:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
