"""The DynamoDB hot store, written through the alert service's own table module (``api.store``)."""

from __future__ import annotations

from collections.abc import Iterable

from api.store import ensure_table, make_client, put_alerts
from coattail.contracts import Alert
from coattail.settings import Settings
from coattail.settings.endpoints import dynamodb_endpoint


class HotStore:
    def __init__(self, settings: Settings) -> None:
        hs = settings.hot_store
        self.table = hs.table
        # More retries than the API's fail-fast client: the pipeline would rather wait than drop.
        self.client = make_client(dynamodb_endpoint(settings), hs.region, pool=4, timeout=10, retries=6)
        if hs.create_if_missing and settings.profile != "eks":  # on eks Terraform owns the table
            ensure_table(self.client, self.table)

    def write(self, alerts: Iterable[Alert]) -> int:
        return put_alerts(self.client, self.table, alerts)
