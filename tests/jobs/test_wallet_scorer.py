"""MOD-004 on Spark: the detector in batch mode (applyInPandas, every horizon resolved) and in streaming
mode (applyInPandasWithState over a file stream, micro-batch by micro-batch, with the watermark) give
the same wallet_scores rows and alerts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts import Alert, dumps
from coattail.contracts.spark import spark_schema
from coattail.settings import Settings
from jobs.detectors.wallets import WalletScorerDetector
from jobs.framework.registry import ModuleRegistry
from tests.jobs.wallet_events import NOISE, SMART, SOL_WALLETS, scenario

pytestmark = pytest.mark.spark
CODE = {"modules.MOD-004.code": "jobs.detectors.wallets"}  # (features.yaml may not name it yet)


@pytest.fixture
def scorer(make_settings: Callable[..., Settings]) -> WalletScorerDetector:
    (detector,) = ModuleRegistry(make_settings(**CODE)).detectors(["MOD-004"])
    assert isinstance(detector, WalletScorerDetector)
    return detector


def _write(folder: Path, name: str, events: list[Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(dumps(e).decode() + "\n" for e in events))


def _key(alert: Alert) -> tuple[str, str, str, str]:
    return (alert.alert_id, alert.alert_type, alert.severity, alert.symbol)


def test_batch_and_stream_give_the_same_scores(
    spark: Any, scorer: WalletScorerDetector, tmp_path: Path
) -> None:
    from coattail.contracts.onchain import OnchainEvent

    events = scenario()
    schema = spark_schema(OnchainEvent)
    folder = tmp_path / "all"
    _write(folder, "events.jsonl", events)
    batch = scorer.finish(
        [r.asDict() for r in scorer.process(spark.read.schema(schema).json(str(folder))).collect()]
    )

    records = sorted(batch.records, key=lambda r: (r["blockchain"], r["scored_at"], r["wallet"]))
    latest = {r["wallet"]: r for r in records}
    assert set(latest) == {SMART, *NOISE, *SOL_WALLETS}
    assert latest[SMART]["alpha_percentile"] == 100
    assert (latest[SMART]["trade_count"], latest[SMART]["win_rate"]) == (7, 1.0)
    assert {latest[w]["alpha_percentile"] for w in NOISE} == {0.0}  # tied: the lower rank
    assert [r["trade_count"] for r in records if r["wallet"] == SOL_WALLETS[0]] == [5]
    alerts = sorted(batch.alerts, key=lambda a: a.detected_at)
    assert [(a.alert_type, a.severity, a.symbol, a.exchange) for a in alerts] == [
        ("score_change", "low", "ETH-USD", "ethereum"),  # scored alone first (0), then above the noise
        ("high_alpha_wallet", "high", "ETH-USD", "ethereum"),  # its trade while at the top
    ]
    trade = alerts[1].details
    assert (trade["wallet"], trade["side"], trade["token_symbol"], trade["usd_value"]) == (
        SMART,
        "buy",
        "WETH",
        "3000",
    )
    assert alerts[0].details["previous_percentile"] == 0
    assert alerts[0].details["alpha_percentile"] == 100

    # The stream: one file per micro-batch, the watermark trailing the events by 60 s.
    stream_dir = tmp_path / "stream"
    chunks = [events[i : i + 25] for i in range(0, len(events) - 2, 25)] + [events[-2:-1], events[-1:]]
    for n, chunk in enumerate(chunks):
        _write(stream_dir, f"{n:04d}.jsonl", chunk)
        stamp = time.time() - 1000 + n  # the file source takes files oldest first: in this order
        os.utime(stream_dir / f"{n:04d}.jsonl", (stamp, stamp))
    source = (
        spark.readStream.schema(schema)
        .option("maxFilesPerTrigger", 1)
        .json(str(stream_dir))
        .withWatermark("block_timestamp", f"{scorer.watermark_seconds()} seconds")
    )
    got_records: list[dict[str, Any]] = []
    got_alerts: list[Alert] = []

    def sink(df: Any, _batch_id: int) -> None:
        result = scorer.finish([r.asDict() for r in df.collect()])
        got_records.extend(result.records)
        got_alerts.extend(result.alerts)

    query = (
        scorer.process(source)
        .writeStream.outputMode("append")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .foreachBatch(sink)
        .start()
    )
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    assert sorted(got_records, key=lambda r: (r["blockchain"], r["scored_at"], r["wallet"])) == records
    assert sorted(map(_key, got_alerts)) == sorted(map(_key, batch.alerts))


def test_params_are_checked(make_settings: Callable[..., Settings]) -> None:
    from coattail.settings import ConfigError

    with pytest.raises(ConfigError, match="very_high_alpha_percentile"):
        make_settings(
            **CODE,
            **{"modules.MOD-004.params": {"high_alpha_percentile": 99, "very_high_alpha_percentile": 95}},
        )
    settings = make_settings(**CODE)
    (detector,) = ModuleRegistry(settings).detectors(["MOD-004"])
    assert detector.partitioning() == "days(scored_at), blockchain"
    assert detector.record_keys() == ("blockchain", "wallet", "scored_at")
    assert "alpha_percentile double" in detector.table_columns()
