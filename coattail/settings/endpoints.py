"""Resolve service endpoints: explicit settings first, else what `coattail dev up` recorded (embedded)."""

from __future__ import annotations

import json

from coattail.settings.errors import ConfigError
from coattail.settings.models import Settings


def _recorded(settings: Settings, name: str) -> str:
    try:
        data = json.loads(settings.state_path("dev", "services.json").read_text())
    except (OSError, ValueError):
        return ""
    return str(data.get(name, ""))


def kafka_bootstrap(settings: Settings) -> str:
    explicit = settings.stream.kafka.bootstrap_servers
    if explicit:
        return explicit
    if settings.profile == "embedded" and (recorded := _recorded(settings, "kafka")):
        return recorded
    raise ConfigError(
        "no Kafka bootstrap servers configured: run `coattail dev up` (embedded profile) "
        "or set COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS"
    )


def dynamodb_endpoint(settings: Settings) -> str | None:
    """Endpoint URL for DynamoDB, or None for the real AWS endpoint of the region (eks profile)."""
    explicit = settings.hot_store.endpoint_url
    if explicit:
        return explicit
    if settings.profile == "eks":
        return None
    if recorded := _recorded(settings, "dynamodb"):
        return recorded
    raise ConfigError(
        "no DynamoDB endpoint configured: run `coattail dev up` (embedded profile) "
        "or set COATTAIL_HOT_STORE__ENDPOINT_URL"
    )


def local_chain_rpc(settings: Settings) -> str | None:
    """The anvil JSON-RPC URL ``coattail dev up`` recorded (embedded profile), else None."""
    if settings.profile != "embedded":
        return None
    return _recorded(settings, "anvil") or None
