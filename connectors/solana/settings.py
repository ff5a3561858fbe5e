"""``connectors.<name>`` with ``type: solana``: which RPC endpoint, how far behind the tip, how often.

An RPC URL often *is* a credential (Helius ``?api-key=``, QuickNode's path token): it may come from an
environment variable (``rpc_url_env``/``ws_url_env``, mounted from a Secret), an API key header's value
only from one (``api_key_env``), and URLs are only ever shown by :func:`redact_url` (scheme and host).
"""

from __future__ import annotations

import logging
import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from coattail.settings.connectors import ConnectorSettingsBase
from coattail.settings.errors import ConfigError

ENV_NAME = r"^([A-Za-z_][A-Za-z0-9_]*)?$"
HEADER_NAME = r"^([A-Za-z0-9-]{1,64})?$"


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: never the path, query or user info, which may hold an API key."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not parts.hostname:
        return "<invalid URL>"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{rest}"


class _RedactSecrets(logging.Filter):
    """Rewrites log records that contain a registered secret (an RPC URL, an API key value).

    Our own lines show endpoints by :func:`redact_url` only; this guards the libraries' lines too
    (httpx logs every request URL at INFO, websockets logs request lines and headers at DEBUG).
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            hits = [s for s in self.secrets if s in text]
            if hits:
                for secret in sorted(hits, key=len, reverse=True):
                    text = text.replace(secret, self.secrets[secret])
                record.msg, record.args = text, None
        return True


_REDACT = _RedactSecrets()
for _name in ("httpx", "httpcore.http11", "httpcore.connection", "websockets.client", "connectors.solana"):
    logging.getLogger(_name).addFilter(_REDACT)


def keep_out_of_logs(secret: str, shown: str = "<redacted>") -> None:
    """Never let ``secret`` reach a log line of the HTTP/WebSocket libraries or ours (``shown`` instead)."""
    if secret and secret != shown:
        _REDACT.secrets[secret] = shown
        parts = urlsplit(secret)
        # the path and query alone too, as the libraries' request lines show them
        if parts.scheme and parts.netloc and (parts.path not in ("", "/") or parts.query):
            tail = secret.split(parts.netloc, 1)[-1]
            _REDACT.secrets[tail] = "/…"


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    if not value:
        return value
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise ValueError("is not a URL with a host and a valid port") from None
    if parts.scheme not in schemes or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"must be a {' or '.join(schemes)} URL with a host")
    return value


class SolanaSettings(ConnectorSettingsBase):
    """One Solana JSON-RPC endpoint followed at ``commitment`` (finalized: never rolled back)."""

    type: Literal["solana"] = "solana"
    kind: Literal["onchain"] = "onchain"
    rpc_url: str = ""  # http(s)://…; or rpc_url_env
    rpc_url_env: str = Field("", pattern=ENV_NAME)
    ws_url: str = ""  # ws(s)://… for rootSubscribe/slotSubscribe wake-ups; empty: poll getSlot only
    ws_url_env: str = Field("", pattern=ENV_NAME)
    api_key_header: str = Field("", pattern=HEADER_NAME)  # e.g. x-api-key; its value from api_key_env
    api_key_env: str = Field("", pattern=ENV_NAME)
    commitment: Literal["finalized", "confirmed"] = "finalized"
    token_files: list[str] = Field(default_factory=list)  # operator files over config/tokens/solana.yaml
    start_slot: int | None = Field(None, ge=0)  # None: start at the current tip
    poll_interval_seconds: float = Field(2.0, gt=0, le=300)  # getSlot when no WebSocket wake-up came
    # getBlocks lists a range's produced slots (skipped ones are absent): one call instead of an error
    # per skipped slot. Off: getBlock for every slot, the skipped ones answer -32007/-32009.
    use_get_blocks: bool = True
    max_slots_per_request: int = Field(1000, ge=1, le=500_000)  # getBlocks range (the RPC allows 500,000)
    requests_per_second: float = Field(10, gt=0, le=10_000)  # public mainnet RPC: 100 per 10 s per IP
    request_timeout_seconds: float = Field(30, gt=0, le=300)
    stale_after_seconds: float = Field(60, gt=0)  # no new finalized block for this long: unhealthy

    @field_validator("rpc_url")
    @classmethod
    def _rpc_url(cls, value: str) -> str:
        return _check_url(value, ("http", "https"))

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        return _check_url(value, ("ws", "wss"))

    @model_validator(mode="after")
    def _one_source_each(self) -> SolanaSettings:
        if self.rpc_url and self.rpc_url_env:
            raise ValueError("set rpc_url or rpc_url_env (an environment variable from a Secret), not both")
        if self.ws_url and self.ws_url_env:
            raise ValueError("set ws_url or ws_url_env, not both")
        if bool(self.api_key_header) != bool(self.api_key_env):
            raise ValueError(
                "api_key_header and api_key_env go together (the header's value comes from the env)"
            )
        return self

    # -- resolved at run time (the environment of the pod, not of the config check) -------------------
    def resolved_rpc_url(self) -> str:
        url = self._from_env(self.rpc_url_env, "rpc_url_env") if self.rpc_url_env else self.rpc_url
        if not url:
            raise ConfigError("connectors.solana needs rpc_url or rpc_url_env (the Solana JSON-RPC endpoint)")
        try:
            _check_url(url, ("http", "https"))
        except ValueError as exc:
            raise ConfigError(f"connectors.solana rpc URL {exc}") from None
        keep_out_of_logs(url, redact_url(url))
        return url

    def resolved_ws_url(self) -> str:
        url = self._from_env(self.ws_url_env, "ws_url_env") if self.ws_url_env else self.ws_url
        try:
            _check_url(url, ("ws", "wss"))
        except ValueError as exc:
            raise ConfigError(f"connectors.solana WebSocket URL {exc}") from None
        keep_out_of_logs(url, redact_url(url))
        return url

    def headers(self) -> dict[str, str]:
        if not self.api_key_header:
            return {}
        value = self._from_env(self.api_key_env, "api_key_env")
        keep_out_of_logs(value)
        return {self.api_key_header: value}

    @staticmethod
    def _from_env(name: str, field: str) -> str:
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"connectors.solana.{field} names {name}, which is not set; mount the Secret there"
            )
        return value
