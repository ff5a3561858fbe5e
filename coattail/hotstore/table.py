"""The hot alerts table (seed §3.4) as data: keys, indexes and TTL, in one place.

DynamoDB's ``create_table`` arguments (embedded profile, tests) and the Terraform module (eks, checked
by tests/infra against :data:`ALERTS_TABLE`) are both derived from or compared with this definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TYPE_INDEX = "type-time-index"
SYMBOL_INDEX = "symbol-time-index"


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index: one partition per value of ``hash_key``, newest first by ``range_key``."""

    name: str
    hash_key: str
    range_key: str
    projection: str = "ALL"


@dataclass(frozen=True)
class TableSpec:
    hash_key: str
    range_key: str
    attributes: dict[str, str]  # every key attribute (table and indexes) -> DynamoDB type
    indexes: tuple[IndexSpec, ...]
    ttl_attribute: str
    billing_mode: str = "PAY_PER_REQUEST"

    def index(self, name: str) -> IndexSpec:
        return next(i for i in self.indexes if i.name == name)

    def create_table_args(self, name: str) -> dict[str, Any]:
        """Keyword arguments for boto3's ``create_table`` (TTL is a separate call)."""

        def keys(hash_key: str, range_key: str) -> list[dict[str, Any]]:
            return [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ]

        return {
            "TableName": name,
            "AttributeDefinitions": [
                {"AttributeName": attr, "AttributeType": kind} for attr, kind in self.attributes.items()
            ],
            "KeySchema": keys(self.hash_key, self.range_key),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": i.name,
                    "KeySchema": keys(i.hash_key, i.range_key),
                    "Projection": {"ProjectionType": i.projection},
                }
                for i in self.indexes
            ],
            "BillingMode": self.billing_mode,
        }


ALERTS_TABLE = TableSpec(
    hash_key="alert_id",
    range_key="detected_at",
    attributes={"alert_id": "S", "detected_at": "S", "alert_type": "S", "symbol": "S"},
    indexes=(
        IndexSpec(TYPE_INDEX, hash_key="alert_type", range_key="detected_at"),  # GET /alerts?type=
        IndexSpec(SYMBOL_INDEX, hash_key="symbol", range_key="detected_at"),  # GET /alerts?symbol=
    ),
    ttl_attribute="ttl_epoch",
)


def table_definition(name: str) -> dict[str, Any]:
    """``create_table`` arguments of the alerts table called ``name``."""
    return ALERTS_TABLE.create_table_args(name)
