"""Deterministic identifiers.

The same trade seen twice (reconnect overlap, REST gap fill, replay) must get the same ``event_id``,
and the same evidence must give the same ``alert_id``, so that every downstream write is idempotent.
UUIDv5 over a canonical text gives exactly that.
"""

from __future__ import annotations

import uuid

# Fixed namespace for all Coat Tail ids; changing it would re-key every stored trade and alert.
NAMESPACE = uuid.UUID("5c0a7ca1-1c7e-4c7a-9d8b-c0a77a11ca91")


def trade_event_id(exchange: str, symbol: str, trade_id: str | int) -> str:
    """Id of one exchange trade: exchange, normalised symbol and the exchange's own trade id."""
    return str(uuid.uuid5(NAMESPACE, f"trade|{exchange.lower()}|{symbol.upper()}|{trade_id}"))


def onchain_event_id(blockchain: str, tx_hash: str, log_index: int) -> str:
    """Id of one on-chain event: chain, transaction hash (signature) and log/instruction index.

    Ethereum hashes are hex and compared lower case; Solana signatures are base58 (case matters).
    """
    tx = tx_hash.lower() if tx_hash.startswith("0x") else tx_hash
    return str(uuid.uuid5(NAMESPACE, f"onchain|{blockchain.lower()}|{tx}|{log_index}"))


def alert_id(module_id: str, *evidence: object) -> str:
    """Id of one alert: the module and the evidence that raised it (e.g. symbol, exchange, window start)."""
    parts = [module_id.upper(), *(_canonical(e) for e in evidence)]
    return str(uuid.uuid5(NAMESPACE, "alert|" + "|".join(parts)))


def _canonical(value: object) -> str:
    # Datetimes render through isoformat so naive/aware mix-ups show up as different ids in tests.
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return str(iso())
    return "" if value is None else str(value)
