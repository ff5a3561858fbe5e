"""More venues, one spread detector: a simulated OKX dislocation against Kraken and Bybit alerts once per
30 s window for each pair that really diverged, and never for the pair that did not."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from coattail.settings import load_settings
from connectors.registry import normalizer
from connectors.simulator import simulate
from jobs.batchmode import clean_trades, detect
from tests.pipeline.helpers import raw_frame

pytestmark = pytest.mark.spark
VENUES = {"okx": ["BTC-USDT"], "kraken": ["BTC-USD"], "bybit": ["BTC-USDT"]}


def test_an_okx_dislocation_alerts_once_per_window_with_the_right_pairs(
    spark: Any, make_settings: Any
) -> None:
    lines, truth = simulate(
        seed=11, minutes=45, rate=9, start=datetime(2026, 1, 5, 9, tzinfo=UTC), instruments=VENUES,
        equivalences={"BTC": ["okx:BTC-USDT", "kraken:BTC-USD", "bybit:BTC-USDT"]}, spread_pct=1.2,
        flow_episodes=False,
    )  # fmt: skip
    (dislocation,) = truth["spread_dislocations"]
    assert (dislocation["a"], dislocation["b"]) == ("okx:BTC-USDT", "kraken:BTC-USD")
    normalisers = {ex: normalizer(ex, symbols) for ex, symbols in VENUES.items()}
    events = [
        t.to_json().decode()
        for line in lines
        for t in normalisers[line["exchange"]].message(line["raw"], line["received_at"])
    ]
    settings = make_settings()  # the shipped equivalences: the five venues, in config order
    assert load_settings().equivalences["BTC"][2:] == ["okx:BTC-USDT", "kraken:BTC-USD", "bybit:BTC-USDT"]
    results = detect(spark, settings, clean_trades(raw_frame(spark, events), settings))
    alerts = results["MOD-003"].alerts
    pairs = Counter((a.details["instrument_a"], a.details["instrument_b"]) for a in alerts)
    # the 90 s stretch is three 30 s windows: once each against both venues that stayed put
    assert pairs == {("okx:BTC-USDT", "kraken:BTC-USD"): 3, ("okx:BTC-USDT", "bybit:BTC-USDT"): 3}
    start, end = (datetime.fromisoformat(dislocation[k]) for k in ("start", "end"))
    assert all(start <= datetime.fromisoformat(a.details["window_start"]) < end for a in alerts)
    assert all(a.details["spread_pct"] > 1.0 for a in alerts)
    compared = {(r["instrument_a"], r["instrument_b"]) for r in results["MOD-003"].records}
    assert ("kraken:BTC-USD", "bybit:BTC-USDT") in compared  # compared every window, never flagged
