"""On-chain connectors (``ethereum``, ``solana``; DESIGN.md's OnchainEvent): their settings, until their
connectors land — each chain then becomes its own module and registry entry, like an exchange."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from coattail.settings.connectors import ConnectorSettingsBase


class OnchainSettings(ConnectorSettingsBase):
    """``connectors.<chain>`` with ``type: onchain``."""

    type: Literal["onchain"] = "onchain"
    kind: Literal["onchain"] = "onchain"
    rpc_url: str = ""
    stale_after_seconds: float = Field(60, gt=0)
