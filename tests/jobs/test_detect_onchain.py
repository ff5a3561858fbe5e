"""`coattail detect --onchain`: MOD-008 and MOD-009 over OnchainEvents (JSONL or Parquet) beside trades,
with exact alerts, table rows, de-duplication and the quality stage's rejects."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from coattail.contracts import alert_id
from coattail.contracts.onchain import OnchainEvent
from tests.jobs.onchain_events import POOL, T0, WETH, bad_lines, jsonl, onchain_config, scenario, transfer
from tests.pipeline.helpers import line, trade

pytestmark = pytest.mark.spark


@pytest.fixture
def onchain_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = onchain_config(tmp_path)
    monkeypatch.setenv("COATTAIL_CONFIG_DIR", str(folder))
    return folder


def detect(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["detect", *args])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def expected_alerts(
    events: dict[str, OnchainEvent], *, with_trades: bool = False
) -> list[tuple[str, str, str, str, str]]:
    """(alert_id, module, type, severity, symbol/exchange) of the scenario. ``with_trades``: the run had
    trades (``--input``), so events without a value were valued — the 9M USDC transfer at 1 USD (its
    registry price reference is ``usd``) is a large transfer then."""
    ids = {name: e.event_id for name, e in events.items()}
    transfers, swaps = "USDC-USD/ethereum", "ETH-USD/uniswap_v2"
    window = alert_id("MOD-009", "ethereum", POOL, T0.replace(minute=1))
    expected = [
        (alert_id("MOD-008", ids["transfer_medium"]), "MOD-008", "large_transfer", "medium", transfers),
        (alert_id("MOD-008", ids["transfer_high"]), "MOD-008", "large_transfer", "high", transfers),
        (alert_id("MOD-008", ids["swap_small"]), "MOD-008", "dex_swap", "low", swaps),
        (alert_id("MOD-008", ids["swap_large"]), "MOD-008", "dex_swap", "medium", swaps),
        (alert_id("MOD-009", ids["swap_large"]), "MOD-009", "large_dex_swap", "high", swaps),
        (window, "MOD-009", "liquidity_change", "high", swaps),
    ]
    if with_trades:
        expected.append(
            (alert_id("MOD-008", ids["transfer_unpriced"]), "MOD-008", "large_transfer", "high", transfers)
        )
    return expected


def summary(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    return [
        (a["alert_id"], a["module_id"], a["alert_type"], a["severity"], f"{a['symbol']}/{a['exchange']}")
        for a in alerts
        if a["module_id"] != "MOD-002"
    ]


def test_detect_onchain_jsonl_beside_trades(spark: Any, tmp_path: Path, onchain_tier: Path) -> None:
    events = scenario()
    chain = tmp_path / "onchain.jsonl"
    # every event twice (a block read twice is the same events) plus three bad records
    chain.write_text(jsonl([*events.values(), *events.values()], bad_lines()))
    whale = trade(at=30, quote_volume=250_000, price=3000, symbol="ETH-USDT")
    trades = tmp_path / "trades.jsonl"
    trades.write_text(line(whale) + "\n")
    out, tables = tmp_path / "alerts.jsonl", tmp_path / "tables"
    args = ["--tier", "onchain", "--input", str(trades), "--onchain", str(chain), "--output", str(out)]
    result = detect([*args, "--tables", str(tables)])
    assert result.exit_code == 0, result.output
    alerts = read_jsonl(out)
    assert sorted(summary(alerts)) == sorted(expected_alerts(events, with_trades=True))
    assert [a["alert_id"] for a in alerts if a["module_id"] == "MOD-002"] == [
        alert_id("MOD-002", whale.event_id)
    ]

    (large,) = [a for a in alerts if a["alert_type"] == "large_dex_swap"]
    d = large["details"]
    assert (d["pair"], d["side"], d["usd_value"], d["base_amount"]) == ("WETH/USDC", "buy", "150000", "47.5")
    assert Decimal(d["execution_price"]) == (Decimal(150000) / Decimal("47.5")).quantize(
        Decimal(1).scaleb(-18)
    )
    impact = abs(Decimal("0.000301777") / Decimal("0.000332668") - 1) * 100  # |after / before - 1| x 100
    assert Decimal(d["price_impact_pct"]) == impact.quantize(Decimal(1).scaleb(-18))
    (liquidity,) = [a for a in alerts if a["alert_type"] == "liquidity_change"]
    assert liquidity["detected_at"] == "2026-01-05T12:02:00.000000Z"
    ld = liquidity["details"]
    assert (Decimal(ld["value_start_usd"]), Decimal(ld["value_end_usd"])) == (
        Decimal("6007509"),
        Decimal("7807509"),
    )
    assert Decimal(ld["change_pct"]).quantize(Decimal("0.01")) == Decimal("29.96")

    landed = read_jsonl(tables / "onchain_events.jsonl")
    assert sorted(r["event_id"] for r in landed) == sorted(e.event_id for e in events.values())  # once each
    assert {r["amount_in"] for r in landed if r["event_type"] == "swap"} == {"3000", "150000"}  # exact
    swaps = read_jsonl(tables / "dex_trades.jsonl")
    assert sorted((r["event_id"], r["severity"]) for r in swaps) == sorted(
        [(events["swap_small"].event_id, None), (events["swap_large"].event_id, "high")]
    )
    assert "MOD-008: 5, MOD-009: 2" in result.output
    (valued,) = [r for r in landed if r["event_id"] == events["transfer_unpriced"].event_id]
    assert valued["usd_value"] == "9000000"


def test_detect_values_unpriced_events_from_the_trades(
    spark: Any, tmp_path: Path, onchain_tier: Path
) -> None:
    # 30 WETH without a value; binance ETH-USDT (WETH's price reference) trades at 3000, then 4000 later
    moved = transfer(1, 40, None, amount="30", token=(WETH, "WETH"))
    chain = tmp_path / "onchain.jsonl"
    chain.write_text(jsonl([moved]))
    trades = tmp_path / "trades.jsonl"
    prices = [trade(at=10, quote_volume=3000, price=3000, symbol="ETH-USDT"),
              trade(at=50, quote_volume=4000, price=4000, symbol="ETH-USDT")]  # fmt: skip
    trades.write_text("".join(line(t) + "\n" for t in prices))
    out, tables = tmp_path / "alerts.jsonl", tmp_path / "tables"
    args = ["--tier", "onchain", "--input", str(trades), "--onchain", str(chain), "--output", str(out)]
    result = detect([*args, "--tables", str(tables)])
    assert result.exit_code == 0, result.output
    (alert,) = read_jsonl(out)
    assert (alert["alert_type"], alert["severity"], alert["symbol"]) == (
        "large_transfer",
        "medium",
        "ETH-USD",
    )
    assert alert["details"]["usd_value"] == "90000"  # 30 x 3000, the price at the block time
    (row,) = read_jsonl(tables / "onchain_events.jsonl")
    assert row["usd_value"] == "90000"


def test_detect_onchain_parquet(spark: Any, tmp_path: Path, onchain_tier: Path) -> None:
    from coattail.contracts.spark import spark_schema

    events = scenario()
    chain = tmp_path / "onchain.jsonl"
    chain.write_text(jsonl(list(events.values())))
    parquet = tmp_path / "onchain.parquet"
    spark.read.schema(spark_schema(OnchainEvent)).json(str(chain)).write.parquet(str(parquet))
    out = tmp_path / "alerts.jsonl"
    result = detect(["--tier", "onchain", "--onchain", str(parquet), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(summary(read_jsonl(out))) == sorted(expected_alerts(events))


def test_detect_onchain_errors(tmp_path: Path, onchain_tier: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    missing = detect(["--tier", "onchain", "--onchain", str(tmp_path / "nope.jsonl"), "--output", str(out)])
    assert missing.exit_code != 0
    assert "--onchain" in missing.output
    assert "does not exist" in missing.output
    assert "Traceback" not in missing.output
    neither = detect(["--tier", "onchain", "--output", str(out)])
    assert neither.exit_code != 0
    assert "--input" in neither.output
    assert "--onchain" in neither.output
    chain = tmp_path / "onchain.jsonl"
    chain.write_text(jsonl(list(scenario().values())))
    small = detect(["--tier", "small", "--onchain", str(chain), "--output", str(out)])
    assert small.exit_code != 0
    assert "no active module" in small.output
    assert "on-chain" in small.output
