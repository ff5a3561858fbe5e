"""The pipeline's side of the hot store (``coattail.hotstore``): DynamoDB, writes retried for a while.

A store outage shorter than ``hot_store.retry_seconds`` delays alerts (the micro-batch waits, then
writes); a longer one fails the pipeline with one line naming the table, the endpoint and the cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from coattail.contracts import Alert
from coattail.hotstore import DynamoAlertStore, make_client
from coattail.hotstore.analytics import DynamoAnalyticsStore
from coattail.hotstore.wallets import DynamoWalletStore
from coattail.hotstore.windows import DynamoWindowStore
from coattail.panels import WindowPoint
from coattail.settings import Settings
from coattail.settings.endpoints import dynamodb_endpoint


class HotStore:
    def __init__(self, settings: Settings) -> None:
        hs = settings.hot_store
        self.table = hs.table
        may_create = hs.create_if_missing and settings.profile != "eks"  # on eks Terraform owns the table
        # botocore's own retries stay few: the store's retry deadline is the one that counts.
        client = make_client(dynamodb_endpoint(settings), hs.region, pool=4, timeout=10, retries=2)
        self.store = DynamoAlertStore(
            client, hs.table, retry_seconds=hs.retry_seconds, create_if_missing=may_create
        )
        self.windows = DynamoWindowStore(self.store)
        self.wallets = DynamoWalletStore(self.store)  # leaderboard, score history, labels, alert refs
        self.analytics = DynamoAnalyticsStore(self.store)  # latest back-test, predictive scores (MOD-011/010)
        self.windows_ttl = timedelta(hours=hs.windows_ttl_hours)
        # At start, wait for a store that is not up yet the way every write does (bounded, one line).
        if may_create:
            self.store.ensure_table()
        else:
            self.store.wait_ready()

    @property
    def name(self) -> str:
        return self.store.name

    def write(self, alerts: Iterable[Alert]) -> int:
        """The alerts, then a reference from each wallet they name (the API's per-wallet alerts)."""
        alerts = list(alerts)
        written = self.store.write(alerts)
        self.wallets.put_alert_refs(alerts)
        return written

    def delete(self, alerts: Iterable[Alert]) -> int:
        return self.store.delete(alerts)

    def write_points(self, points: Iterable[WindowPoint]) -> int:
        """The dashboard's recent-windows points (after the alerts: they are for charts, not alerting)."""
        return self.windows.put_points(points, self.windows_ttl, datetime.now(UTC))

    def close(self) -> None:
        self.store.close()
