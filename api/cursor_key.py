"""The HMAC key that signs page cursors: configured, else random per table and kept in that table.

A key derived from public facts (the table name) would let anyone forge cursors, so without
``api.cursor_secret`` each alerts table gets 32 random bytes, stored in the table itself as one
reserved item. It is written with a conditional put-if-absent, so several API replicas that start
together all end up with the one key that won, and a restart keeps it (cursors stay valid).

The reserved item has no ``alert_type``/``symbol`` (so it is in neither GSI, which every listing
queries) and no ``ttl_epoch`` (so DynamoDB never expires it, and GET /alerts/{id}, which requires a
future ``ttl_epoch``, never returns it).

On the eks profile the API's IAM role only reads the table, so a key must be configured there
(the chart passes it from a Secret); :func:`require_configured_key` says so in one line.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from coattail.hotstore import AlertReader, DynamoAlertStore, StoreUnavailableError
from coattail.settings import ConfigError, Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

KEY_ITEM: dict[str, Any] = {
    "alert_id": {"S": "__coattail__/cursor-key"},
    "detected_at": {"S": "0000-01-01T00:00:00.000000Z"},
}
KEY_BYTES = 32


def configured_key(secret: str) -> bytes | None:
    """The key from ``api.cursor_secret``, or None when none is configured (use the stored one)."""
    return hashlib.sha256(secret.encode()).digest() if secret else None


def require_configured_key(settings: Settings) -> None:
    if settings.profile == "eks" and not settings.api.cursor_secret:
        raise ConfigError(
            "api.cursor_secret is required on the eks profile (the API may only read the alerts "
            "table, so it cannot store a generated key): set COATTAIL_API__CURSOR_SECRET from a Secret"
        )


def key_for_store(store: AlertReader) -> bytes:
    """The stored key of a DynamoDB store; a per-process random key for an in-memory store."""
    if isinstance(store, DynamoAlertStore):
        return stored_key(store.client, store.table)
    return secrets.token_bytes(KEY_BYTES)  # the memory store lives and dies with this process


def stored_key(client: DynamoDBClient, table: str) -> bytes:
    """The table's cursor key, created on first use; StoreUnavailableError when DynamoDB says no."""
    try:
        found = _read(client, table)
        if found is not None:
            return found
        candidate = secrets.token_bytes(KEY_BYTES)
        try:
            client.put_item(
                TableName=table,
                Item={**KEY_ITEM, "cursor_key": {"B": candidate}},
                ConditionExpression="attribute_not_exists(alert_id)",
            )
            return candidate
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        winner = _read(client, table)  # another replica stored its key first: use that one
        if winner is None:
            raise StoreUnavailableError(f"the cursor key in table {table!r} vanished while it was created")
        return winner
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code == "ResourceNotFoundException":
            raise StoreUnavailableError(f"alerts table {table!r} does not exist") from None
        raise StoreUnavailableError(
            f"DynamoDB refused the cursor key of table {table!r} ({code}); "
            "set api.cursor_secret if the API may not write the table"
        ) from None
    except BotoCoreError as exc:
        raise StoreUnavailableError(f"DynamoDB is unreachable ({type(exc).__name__})") from None


def _read(client: DynamoDBClient, table: str) -> bytes | None:
    item = client.get_item(TableName=table, Key=KEY_ITEM, ConsistentRead=True).get("Item")
    if not item:
        return None
    value = item.get("cursor_key", {}).get("B")
    if not isinstance(value, bytes) or len(value) != KEY_BYTES:
        raise StoreUnavailableError(f"the cursor key item in table {table!r} is damaged; delete it")
    return value
