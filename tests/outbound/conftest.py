"""Fixtures of the alerts-out tests: alerts of every kind, settings on unique topics and tables."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts import Alert
from coattail.settings import Settings, load_settings

MODULES = {"volume_spike": "MOD-001", "whale_trade": "MOD-002", "spread_divergence": "MOD-003"}

MakeAlert = Callable[..., Alert]
MakeSettings = Callable[..., Settings]


def make_alert(
    n: int,
    *,
    alert_type: str = "whale_trade",
    symbol: str = "BTC-USDT",
    severity: str = "medium",
    message: str | None = None,
) -> Alert:
    """Alert number ``n`` (its own id), detected now: DynamoDB Local applies TTL to older ones."""
    detected = datetime.now(UTC) - timedelta(seconds=n)
    return Alert.create(
        module_id=MODULES.get(alert_type, "MOD-004"),
        alert_type=alert_type,
        symbol=symbol,
        exchange="binance",
        severity=severity,  # type: ignore[arg-type]
        detected_at=detected,
        message=message or f"{alert_type} #{n} on {symbol}",
        details={"seq": n, "quote_volume": "150000.50"},
        evidence=(symbol, n, "outbound-tests", os.getpid()),
    )


def mixed_alerts(count: int, start: int = 0) -> list[Alert]:
    """Alerts cycling through types, symbols and severities (so rules match some and not others)."""
    types = list(MODULES)
    symbols = ["BTC-USDT", "ETH-USDT", "BTC-USD"]
    severities = ["low", "medium", "high", "critical"]
    return [
        make_alert(
            n,
            alert_type=types[n % 3],
            symbol=symbols[(n // 3) % 3],
            severity=severities[(n // 9) % 4] if types[n % 3] == "whale_trade" else severities[n % 3],
        )
        for n in range(start, start + count)
    ]


@pytest.fixture
def outbound_settings(tmp_path: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Settings with a private state folder and unique alerts_out names, plus dotted ``overrides``."""
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "alerts_out.enabled": True,
            "alerts_out.topic": f"alerts-{unique_name}",
            "alerts_out.dead_letter_topic": f"alerts-dlq-{unique_name}",
            "alerts_out.consumer_group": f"webhooks-{unique_name}",
            "alerts_out.publish_timeout_seconds": 15,
            "hot_store.table": f"alerts-{unique_name}",
            "hot_store.retry_seconds": 10,
        }
        return load_settings(env={}, overrides={**base, **overrides})

    return make
