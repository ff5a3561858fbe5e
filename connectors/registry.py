"""The registry maps: exchange name -> :class:`~connectors.spec.ExchangeSpec`, chain -> ChainSpec.

Adding an exchange is one module (settings, symbols, normaliser, REST client with its rate limits,
connector, simulator renderer and its ``SPEC``), one entry here and its ``connectors:`` config. The
settings union (``SETTINGS_MODELS``), ``normalizer()``, the normalize CLI's ``--exchange`` choices, the
connector manager and the simulator all read this map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from coattail.settings.connectors import ConnectorSettingsBase
from connectors import binance, bybit, coinbase, kraken, okx
from connectors.ethereum.settings import EthereumSettings
from connectors.solana.settings import SolanaSettings
from connectors.spec import ChainSpec, ExchangeSpec, Normalizer

EXCHANGES: Mapping[str, ExchangeSpec] = {
    spec.name: spec for spec in (binance.SPEC, bybit.SPEC, coinbase.SPEC, kraken.SPEC, okx.SPEC)
}

# Chain name (the OnchainEvent ``blockchain``) -> its module's parts; adding a chain is one package
# (settings, normaliser, RPC client, connector) and one entry here.
CHAINS: Mapping[str, ChainSpec] = {
    spec.name: spec
    for spec in (
        ChainSpec(
            "ethereum",
            EthereumSettings,
            "connectors.ethereum.connector:EthereumConnector",
            "connectors.ethereum.normalize:EthereumNormalizer",
        ),
        ChainSpec(
            "solana",
            SolanaSettings,
            "connectors.solana.connector:SolanaConnector",
            "connectors.solana.normalize:SolanaNormalizer",
        ),
    )
}

# Connector ``type`` -> settings model: the members of the config's ``connectors:`` union
# (coattail/settings/connectors.py).
SETTINGS_MODELS: Mapping[str, type[ConnectorSettingsBase]] = {
    **{name: spec.settings_model for name, spec in EXCHANGES.items()},
    **{name: spec.settings_model for name, spec in CHAINS.items()},
}

__all__ = ["CHAINS", "EXCHANGES", "SETTINGS_MODELS", "Normalizer", "exchange", "normalizer"]


def exchange(name: str) -> ExchangeSpec:
    """The spec of exchange ``name``; ValueError (one line) for an unknown one."""
    spec = EXCHANGES.get(name)
    if spec is None:
        raise ValueError(f"unknown exchange {name[:40]!r}; known: {', '.join(sorted(EXCHANGES))}")
    return spec


def normalizer(name: str, known_symbols: Iterable[str] = ()) -> Normalizer:
    """Offline normaliser (replay, normalize CLI, simulator checks); Binance splits with the bundled list."""
    return exchange(name).normalizer(known_symbols)
