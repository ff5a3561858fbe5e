"""``connectors.ethereum`` settings (``type: ethereum``).

Any JSON-RPC endpoint by URL. An API key travels either inside the URL (Alchemy ``/v2/<key>``, Infura
``/v3/<key>``) — the URL then comes from a Secret through ``rpc_url_env`` — or in a header:
``api_key_header`` names the header and ``api_key_env`` the environment variable (a mounted Secret)
that holds its value. Neither is ever logged: :mod:`connectors.ethereum.rpc` redacts both.
"""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from coattail.settings.connectors import ConnectorSettingsBase

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")  # an HTTP token (RFC 9110)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class EthereumSettings(ConnectorSettingsBase):
    """``connectors.<name>`` with ``type: ethereum``."""

    type: Literal["ethereum"] = "ethereum"
    kind: Literal["onchain"] = "onchain"
    # HTTP(S) JSON-RPC endpoint: blocks, logs, receipts and eth_call go here.
    rpc_url: str = "http://127.0.0.1:8545"
    # Environment variable that holds the whole RPC URL when it carries a key (wins over rpc_url).
    rpc_url_env: str = ""
    # WebSocket endpoint for eth_subscribe newHeads; empty: rpc_url with ws(s):// (anvil, geth, most
    # providers serve both on one URL). "off": no WebSocket, poll eth_blockNumber instead.
    ws_url: str = ""
    # A block is emitted once this many blocks are on top of it (mainnet: 12 ~ 2.4 min; tests: 2).
    confirmations: int = Field(12, ge=0, le=1024)
    api_key_header: str = ""  # e.g. "x-api-key"; its value is read from api_key_env
    api_key_env: str = "ETHEREUM_RPC_API_KEY"
    token_files: list[str] = Field(default_factory=list)  # extra token registry YAML files, in order
    # "latest": start at the newest confirmed block; a number: (re)start there (a backfill).
    start_block: Literal["latest"] | int = "latest"
    # Head polling when there is no WebSocket, and the longest wait for a head while subscribed.
    poll_interval_seconds: float = Field(4.0, gt=0, le=300)
    # Emitted block hashes kept to notice a reorg deeper than `confirmations` (and re-read it).
    reorg_window_blocks: int = Field(128, ge=1, le=100_000)
    request_timeout_seconds: float = Field(20.0, gt=0, le=300)
    stale_after_seconds: float = Field(60, gt=0)

    @field_validator("rpc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value:
            return value  # only with rpc_url_env (checked below)
        scheme = urlsplit(value).scheme
        if scheme not in ("http", "https") or not urlsplit(value).hostname:
            raise ValueError("rpc_url must be an http:// or https:// URL (the WebSocket one goes in ws_url)")
        return value

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if (
            value
            and value != "off"
            and (urlsplit(value).scheme not in ("ws", "wss") or not urlsplit(value).hostname)
        ):
            raise ValueError("ws_url must be a ws:// or wss:// URL, empty (derived from rpc_url) or 'off'")
        return value

    @field_validator("api_key_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if value and not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"api_key_header {value[:40]!r} is not an HTTP header name")
        return value

    @field_validator("api_key_env", "rpc_url_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if value and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value[:40]!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _complete(self) -> EthereumSettings:
        if self.api_key_header and not self.api_key_env:
            raise ValueError("api_key_header needs api_key_env (the variable that holds the key)")
        if not self.rpc_url and not self.rpc_url_env:
            raise ValueError("set rpc_url (http(s)://...) or rpc_url_env (the variable holding a keyed URL)")
        return self

    # -- resolved at run time (environment, derived URLs) -----------------------------------------
    def http_url(self, env: dict[str, str] | None = None) -> str:
        """The RPC URL to use: ``rpc_url_env``'s value when set there, else ``rpc_url``."""
        source = os.environ if env is None else env
        if self.rpc_url_env and source.get(self.rpc_url_env):
            url = source[self.rpc_url_env].strip()
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"${self.rpc_url_env} must hold an http(s):// RPC URL")
            return url
        if not self.rpc_url:
            raise ValueError(
                f"${self.rpc_url_env} is empty and rpc_url is not set; mount the RPC URL Secret there"
            )
        return self.rpc_url

    def websocket_url(self, env: dict[str, str] | None = None) -> str | None:
        """The WebSocket URL (None: poll). Derived from the HTTP URL, path and query (the key) kept."""
        if self.ws_url == "off":
            return None
        if self.ws_url:
            return self.ws_url
        parts = urlsplit(self.http_url(env))
        return urlunsplit(parts._replace(scheme="wss" if parts.scheme == "https" else "ws"))

    def headers(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The API key header, if configured; a missing variable is an error (fail closed)."""
        if not self.api_key_header:
            return {}
        source = os.environ if env is None else env
        value = source.get(self.api_key_env, "").strip()
        if not value:
            raise ValueError(
                f"api_key_header {self.api_key_header} is set but ${self.api_key_env} is empty; "
                "mount the RPC key Secret there"
            )
        return {self.api_key_header: value}
