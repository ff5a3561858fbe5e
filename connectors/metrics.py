"""Prometheus metrics of the connector pods (one registry per manager, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Counters are labelled by exchange; the writer metrics also by stream backend."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "coattail_connector_messages_received", "Raw messages received", ["exchange"], registry=r
        )
        self.normalised = Counter(
            "coattail_connector_trades_normalised", "Trades normalised", ["exchange"], registry=r
        )
        self.duplicates = Counter(
            "coattail_connector_duplicates_dropped",
            "Trades seen twice in-process (reconnect overlap, gap fill) and dropped",
            ["exchange"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "coattail_connector_dead_lettered", "Malformed messages sent to the dead-letter stream",
            ["exchange"], registry=r,
        )  # fmt: skip
        self.ignored = Counter(
            "coattail_connector_messages_ignored",
            "Known control messages (heartbeats, subscription replies) that hold no trade",
            ["exchange"],
            registry=r,
        )
        self.reconnects = Counter(
            "coattail_connector_reconnects", "WebSocket reconnects", ["exchange"], registry=r
        )
        self.gap_filled = Counter(
            "coattail_connector_gap_filled_trades",
            "Trades recovered from the REST endpoint after a reconnect",
            ["exchange"],
            registry=r,
        )
        self.gap_fill_failures = Counter(
            "coattail_connector_gap_fill_failures", "Gap fills that failed (trades may be missing)",
            ["exchange"], registry=r,
        )  # fmt: skip
        self.connected = Gauge(
            "coattail_connector_connected", "1 while the WebSocket is open", ["exchange"], registry=r
        )
        # Chains: how far the connector got (a stalled chain shows as a flat line, a lag against the head).
        self.last_block = Gauge(
            "coattail_connector_last_block", "Last block (slot) a chain connector has read", ["exchange"],
            registry=r,
        )  # fmt: skip
        self.produced = Counter(
            "coattail_producer_trades_produced", "Trades acknowledged by the stream", ["exchange"], registry=r
        )
        self.produce_failures = Counter(
            "coattail_producer_failures", "Records the stream finally refused", ["backend"], registry=r
        )
        self.produce_retries = Counter(
            "coattail_producer_retries", "Records resent after a partial failure", ["backend"], registry=r
        )
        self.produce_latency = Histogram(
            "coattail_producer_latency_seconds",
            "Time from handing a record to the client to its acknowledgement",
            ["backend"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
