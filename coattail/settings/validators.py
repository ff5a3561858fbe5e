"""Field types whose checks go beyond a type: endpoint URLs, DynamoDB table names, contract fields.

Each one fails while the config loads, with one sentence, instead of deep inside boto3 or Spark later.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from coattail.contracts.trade import TradeEvent

TABLE_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")


def check_endpoint_url(value: str) -> str:
    """Empty (use the default endpoint) or an ``http(s)://host[:port][/path]`` URL."""
    if not value:
        return value
    problem = f"{value[:80]!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8000"
    try:
        parts = urlsplit(value)
        _ = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(problem)
    if parts.username or parts.password:
        raise ValueError(f"{value[:80]!r} must not carry credentials; use the AWS credential chain")
    return value


def check_table_name(value: str) -> str:
    """DynamoDB's naming rule: 3 to 255 of letters, digits, underscore, hyphen and dot."""
    if not TABLE_NAME.match(value):
        raise ValueError(
            f"{value[:80]!r} is not a DynamoDB table name (3-255 characters of a-z, A-Z, 0-9, '_', '-', '.')"
        )
    return value


def check_trade_field(value: str) -> str:
    """A field of the TradeEvent contract (the quality checks look them up by name)."""
    known = list(TradeEvent.model_fields)
    if value not in known:
        raise ValueError(f"{value!r} is not a TradeEvent field; known fields: {', '.join(known)}")
    return value


def check_api_key(value: str) -> str:
    """A configured key: never blank (a blank key must not silently turn authentication off)."""
    key = value.strip()
    if not key:
        raise ValueError("an API key is blank; remove the entry or set a real key")
    return key


def check_cursor_secret(value: str) -> str:
    """Empty (a random key kept in the alerts table) or a real secret of at least 16 characters."""
    if value and len(value.strip()) < 16:
        raise ValueError("must be at least 16 characters (or empty for a generated, stored key)")
    return value


ApiKey = Annotated[str, AfterValidator(check_api_key)]
CursorSecret = Annotated[str, AfterValidator(check_cursor_secret)]
EndpointUrl = Annotated[str, AfterValidator(check_endpoint_url)]
DynamoTableName = Annotated[str, AfterValidator(check_table_name)]
TradeFieldName = Annotated[str, AfterValidator(check_trade_field)]
