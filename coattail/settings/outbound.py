"""``alerts_out``: alerts leave the system as they are written (an ``alerts`` topic/stream, webhooks).

The pipeline publishes every new alert once to ``topic`` (Kafka) or ``kinesis_stream_name``; the
webhook dispatcher (``coattail alerts dispatch``) consumes that topic with its own consumer group and
POSTs each alert to every matching target of ``webhooks``. A target's URL is often a secret (a Slack
incoming-webhook URL is its own credential), so it may come from an environment variable
(``url_env``, mounted from a Secret) and is logged by host only.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coattail.contracts.alert import Severity
from coattail.contracts.trade import SYMBOL_PATTERN

ALERT_TYPE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
TOPIC = r"^[A-Za-z0-9._-]{1,249}$"  # Kafka's topic name rule


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_webhook_url(value: str) -> str:
    """Empty or an ``http(s)://host[:port][/path]`` URL; the message never repeats the URL (a secret)."""
    if not value:
        return value
    try:
        parts = urlsplit(value)
        _ = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError("is not an http(s) URL with a host and a valid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("is not an http(s) URL with a host, e.g. https://hooks.example.com/T000/B000")
    return value


class WebhookTargetSettings(_Section):
    """One target: which alerts it wants (every rule must match; empty lists match everything), where
    they go, in which body format, and how hard the target may be hit."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    url: str = ""
    url_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    alert_types: list[str] = Field(default_factory=list)
    symbols: list[str] = Field(default_factory=list)
    min_severity: Severity = "low"
    format: Literal["slack", "json"] = "slack"
    # Slack allows about one message per second per incoming webhook, with short bursts.
    rate_per_minute: float = Field(60, gt=0, le=60_000)
    burst: int = Field(5, ge=1, le=1000)
    max_attempts: int = Field(6, ge=1, le=50)
    timeout_seconds: float = Field(5, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_webhook_url(value)

    @field_validator("alert_types")
    @classmethod
    def _alert_types(cls, value: list[str]) -> list[str]:
        for alert_type in value:
            if not ALERT_TYPE.fullmatch(alert_type):
                raise ValueError(f"{alert_type[:64]!r} is not an alert type (lower case, e.g. whale_trade)")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not re.fullmatch(SYMBOL_PATTERN, symbol):
                raise ValueError(f"symbol {symbol[:32]!r} is not BASE-QUOTE upper case, e.g. BTC-USDT")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> WebhookTargetSettings:
        if bool(self.url) == bool(self.url_env):
            raise ValueError(
                f"webhook {self.name!r} needs exactly one of url or url_env (the name of an environment "
                "variable holding the URL, e.g. from a Secret)"
            )
        return self


class AlertsOutSettings(_Section):
    enabled: bool = False
    topic: str = Field("alerts", pattern=TOPIC)
    kinesis_stream_name: str = Field("coattail-alerts", min_length=1, max_length=128)
    dead_letter_topic: str = Field("alerts-webhook-dlq", pattern=TOPIC)
    consumer_group: str = Field("coattail-webhooks", min_length=1, max_length=255)
    api_base_url: str = ""
    # How long the pipeline waits for the broker/stream to acknowledge a micro-batch's alerts.
    publish_timeout_seconds: float = Field(30, gt=0, le=600)
    # Alert ids the dispatcher remembers as delivered (a redelivery after a rebalance is skipped).
    dedupe_window: int = Field(10_000, ge=1)
    webhooks: list[WebhookTargetSettings] = Field(default_factory=list)

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_webhook_url(value).rstrip("/")

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: list[WebhookTargetSettings]) -> list[WebhookTargetSettings]:
        seen: set[str] = set()
        for target in value:
            if target.name in seen:
                raise ValueError(f"two webhooks are named {target.name!r}; names must be unique")
            seen.add(target.name)
        return value
