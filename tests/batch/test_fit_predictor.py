"""MOD-010's fit (`coattail batch fit-predictor`) and its batch path.

* no look-ahead: samples whose feature -> label relation reverses in time. A time-ordered fit learns
  the past and fails on the future (test AUC < 0.5); the same samples with shuffled times (what a random
  split amounts to) score well. An implementation that let test-period samples into training would
  pass the second assertion's way and fail the first.
* a planted relation: AUC >= 0.7, and the written file loads as MOD-010's coefficients (with calibration);
* Spark: MOD-010 over a small trades DataFrame (batch path) gives 15 min windows with the features the
  pure functions compute, and the streaming path (a file stream, state in its checkpoint) closes the
  same windows under the watermark;
* the CLI on a lake of its own (subprocess: a Spark session of its own), and its one-line errors.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from coattail.settings import Settings, load_settings
from jobs.batch import lake
from jobs.batch.predictor import FitError, FitReport, Sample, fit_rows, move_labels
from jobs.batch.spark import batch_session
from jobs.detectors.predictive import PredictiveScorerDetector
from jobs.logic import WhaleFlowTrade
from jobs.predict_logic import (
    FEATURES,
    HORIZONS,
    PredictorState,
    PriceTrade,
    advance_evaluation,
    load_coefficients,
)
from jobs.sinks.iceberg import RAW_TRADES_COLUMNS, ensure_core_tables, ensure_table, qualified, rows_frame

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(minutes=15)


def _samples(n: int, label_of: Any, seed: int = 7) -> tuple[list[Sample], list[dict[str, bool | None]]]:
    rng = random.Random(seed)
    samples, labels = [], []
    for i in range(n):
        x = rng.random()
        features = {f: rng.random() * 0.1 for f in FEATURES} | {"consensus": x}
        samples.append(Sample("BTC-USDT", T0 + i * STEP, 100.0, features))
        moved = label_of(i, x, rng)
        labels.append(dict.fromkeys(HORIZONS, moved))
    return samples, labels


# -- pure -------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_time_ordered_fit_cannot_see_the_future() -> None:
    n = 400
    cut = int(n * 0.7)
    # The relation reverses where the test period starts: big consensus means a move, then the opposite.
    samples, labels = _samples(n, lambda i, x, _: (x > 0.5) if i < cut else (x < 0.5))
    fits = fit_rows(samples, labels)
    for h, fit in fits.items():
        assert fit.auc is not None
        assert fit.auc < 0.5, (h, fit.auc)  # learnt on the past only: wrong about the reversed future
        assert fit.train_range[1] < fit.test_range[0]
        assert fit.n_test == n - cut
        # Purged: training samples whose label window reaches the test period (every 15 min: h / 15 min).
        assert fit.purged == HORIZONS[h] // STEP
        assert fit.n_train == cut - fit.purged
    # The same samples, times shuffled (a random split): train and test mix both regimes, and the
    # "future" leaks into training — the test AUC looks fine.
    times = [s.scored_at for s in samples]
    random.Random(3).shuffle(times)
    shuffled = [Sample(s.symbol, t, s.price, s.features) for s, t in zip(samples, times, strict=True)]
    leaky = fit_rows(shuffled, labels)
    assert all(f.auc is not None and f.auc > 0.6 for f in leaky.values()), {
        h: f.auc for h, f in leaky.items()
    }


@pytest.mark.unit
def test_a_planted_relation_is_found_and_written(tmp_path: Path) -> None:
    samples, labels = _samples(300, lambda i, x, rng: x + rng.gauss(0, 0.15) > 0.7)
    fits = fit_rows(samples, labels)
    for fit in fits.values():
        assert fit.auc is not None
        assert fit.auc >= 0.7
        assert fit.model.weights[FEATURES.index("consensus")] > 0
        assert fit.calibration is not None
        assert fit.calibration["bins"] == 5
    report = FitReport(
        "fit-test", T0, tmp_path / "c.json", len(samples), {h: 300 for h in HORIZONS}, fits, 42
    )
    doc = report.document(T0, T0 + 300 * STEP)
    (tmp_path / "c.json").write_text(json.dumps(doc))
    loaded = load_coefficients(tmp_path / "c.json")  # the file MOD-010 loads at start
    assert loaded.version == "fit-test"
    assert loaded.models["1h"] == fits["1h"].model
    assert loaded.meta["snapshot_id"] == 42
    one_hour = doc["horizons"]["1h"]
    assert set(one_hour) >= {
        "intercept",
        "weights",
        "auc",
        "calibration",
        "n_train",
        "n_test",
        "train",
        "test",
    }
    assert one_hour["train"]["end"] < one_hour["test"]["start"]


@pytest.mark.unit
def test_too_few_rows_and_one_class_are_one_line_errors() -> None:
    samples, labels = _samples(20, lambda *_: True)
    with pytest.raises(
        FitError, match=r"^1h: only 20 scored windows whose 1h outcome is known; need at least 30"
    ):
        fit_rows(samples, labels)
    samples, labels = _samples(100, lambda i, *_: i >= 90)  # moves only in the test period
    with pytest.raises(FitError, match="every training window is one of the non-moves"):
        fit_rows(samples, labels)
    samples, labels = _samples(100, lambda i, x, _: x > 0.5 if i < 70 else False)  # the test: one class
    fits = fit_rows(samples, labels)
    assert fits["1h"].auc is None
    assert fits["1h"].to_json()["auc_note"] == "the test period holds one class only: AUC undefined"


@pytest.mark.unit
def test_move_labels_read_the_horizon_only_once_it_elapsed() -> None:
    def m(minutes: int) -> int:
        return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)

    bars = {
        "BTC-USDT": [(m(0), 100.5, 99.5), (m(50), 102.5, 101.0), (m(100), 99.0, 97.0), (m(150), 100.2, 100)]
    }
    s = Sample("BTC-USDT", T0, 100.0, dict.fromkeys(FEATURES, 0.0))
    late = Sample("BTC-USDT", T0 + timedelta(hours=2), 100.0, dict.fromkeys(FEATURES, 0.0))
    got = move_labels([s, late], bars, T0 + timedelta(hours=3), 2.0)
    assert got[0] == {"1h": True, "2h": True, "4h": None}  # +2.5 % within the hour; 4 h not elapsed
    assert got[1] == {"1h": False, "2h": None, "4h": None}  # [2 h, 3 h): 0.2 %
    assert move_labels([late], {}, T0 + timedelta(hours=3), 2.0)[0]["1h"] is None  # no price: unknown
    assert move_labels([s], bars, T0 + timedelta(hours=5), 2.8)[0] == {"1h": False, "2h": True, "4h": True}


# -- Spark ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("predictor-lake")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_STATE_DIR", str(state))
        yield state


def settings_for(state: Path) -> Settings:
    return load_settings("large", env={"COATTAIL_STATE_DIR": str(state)})


@pytest.fixture(scope="module")
def spark(lake_state: Path) -> Iterator[Any]:
    session = batch_session(settings_for(lake_state), master="local[2]")
    yield session
    session.stop()


def _trade(i: int, symbol: str, at: datetime, price: str, qv: str, side: str = "buy") -> tuple[Any, ...]:
    q = Decimal(qv) / Decimal(price)
    return (f"{symbol}-{i}", "binance", symbol, Decimal(price), q, Decimal(qv), side, at, at, False, False)


def _market() -> list[tuple[Any, ...]]:
    """40 min of BTC-USDT (a trade every 20 s, whales buying in minutes 11-13) and 20 min of ETH-USDT."""
    rows = []
    for i in range(120):
        at = T0 + timedelta(seconds=10 + 20 * i)
        minute = (at - T0).seconds // 60
        qv = 1000 + (minute % 3) * 100 + (25_000 if minute == 12 else 0)
        rows.append(_trade(i, "BTC-USDT", at, f"{100 + i / 100:.2f}", str(qv)))
    for j, minute in enumerate((11, 12, 13, 16)):
        at = T0 + timedelta(minutes=minute, seconds=5)
        rows.append(_trade(1000 + j, "BTC-USDT", at, "101", "300000", "sell" if minute == 16 else "buy"))
    for i in range(60):
        rows.append(_trade(i, "ETH-USDT", T0 + timedelta(seconds=20 * i + 1), "3000", "500"))
    return rows


@pytest.mark.spark
def test_the_batch_path_scores_15_minute_windows(lake_state: Path, spark: Any) -> None:
    settings = settings_for(lake_state)
    detector = PredictiveScorerDetector()
    detector.configure(settings)
    rows = _market()
    trades = spark.createDataFrame(rows, RAW_TRADES_COLUMNS)
    out = [r.asDict() for r in detector.process(trades).collect()]
    result = detector.finish(out)
    scored = [(r["symbol"], r["window_start"], r["scored_at"], r["trade_count"]) for r in result.records]
    assert scored == [
        (
            "BTC-USDT",
            T0,
            T0 + STEP,
            45 + 3,
        ),
        ("ETH-USDT", T0, T0 + STEP, 45),
        ("BTC-USDT", T0 + STEP, T0 + 2 * STEP, 45 + 1),
        ("ETH-USDT", T0 + STEP, T0 + 2 * STEP, 15),
        ("BTC-USDT", T0 + 2 * STEP, T0 + 3 * STEP, 30),
    ]

    # The features are what the pure functions give for the same trades.
    def ms(t: datetime) -> int:
        return int(t.timestamp() * 1000)

    btc = [r for r in rows if r[2] == "BTC-USDT"]
    pure = advance_evaluation(
        PredictorState(),
        [PriceTrade(ms(r[7]), r[1], float(r[5]), format(r[3], "f"), r[0]) for r in btc],
        [WhaleFlowTrade(ms(r[7]), r[1], r[6], r[5], r[0]) for r in btc if r[5] > detector.floor],
        None,
        flow_ms=300_000,
        eval_ms=900_000,
        volume={"window_ms": 60_000, "baseline_windows": 60, "min_history": 10, "threshold": 2.5},
    )
    first = result.records[0]
    features = json.loads(first["features"])
    assert first["max_volume_z"] == pytest.approx(pure[0].slot.max_abs_z)
    assert features["volume_z"] == pytest.approx(min(10.0, pure[0].slot.max_abs_z or 0), abs=1e-6)
    assert features["flow"] == pytest.approx(1.0)  # whales only bought in the first window
    assert first["consensus_direction"] == "bullish"
    assert features["consensus"] == pytest.approx(first["consensus_score"] / 100, abs=1e-6)
    assert first["price"] == Decimal("100.44")  # the window's last trade
    assert json.loads(result.records[2]["features"])["flow"] == 1.0  # one whale sell: all sell flow
    assert result.records[1]["consensus_score"] is None  # ETH: no whales, no consensus
    assert {a.alert_type for a in result.alerts} <= {"high_probability_move", "score_update"}


def _json_line(row: tuple[Any, ...]) -> str:
    names = ["event_id", "exchange", "symbol", "price", "quantity", "quote_volume", "side", "timestamp"]
    values = dict(zip(names, row[:8], strict=True))
    stamp = values["timestamp"].isoformat().replace("+00:00", "Z")
    return json.dumps(
        {**{k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}, "timestamp": stamp}
        | {"ingestion_timestamp": stamp}
    )


@pytest.mark.spark
def test_the_stream_closes_the_same_windows_under_the_watermark(
    lake_state: Path, spark: Any, tmp_path: Path
) -> None:
    from coattail.contracts import TradeEvent
    from coattail.contracts.spark import spark_schema

    settings = settings_for(lake_state)
    batch, stream = PredictiveScorerDetector(), PredictiveScorerDetector()
    batch.configure(settings)
    stream.configure(settings)
    rows = sorted(_market(), key=lambda r: r[7])
    expected = batch.finish(
        [r.asDict() for r in batch.process(spark.createDataFrame(rows, RAW_TRADES_COLUMNS)).collect()]
    )
    source = tmp_path / "in"
    source.mkdir()
    got: list[dict[str, Any]] = []

    def sink(df: Any, _: int) -> None:
        got.extend(stream.finish([r.asDict() for r in df.collect()]).records)

    trades = (
        spark.readStream.schema(spark_schema(TradeEvent))
        .json(str(source))
        .withWatermark("timestamp", "30 seconds")
    )
    query = (
        stream.process(trades).writeStream.foreachBatch(sink)
        .option("checkpointLocation", str(tmp_path / "checkpoint")).trigger(processingTime="1 second").start()
    )  # fmt: skip
    try:
        half = len(rows) // 2
        for name, part in (("a", rows[:half]), ("b", rows[half:])):
            (source / f"{name}.json").write_text("\n".join(_json_line(r) for r in part) + "\n")
            query.processAllAvailable()
        # A late-comer an hour on moves the watermark past every window: all close (no-data batches).
        (source / "c.json").write_text(
            _json_line(_trade(9999, "ETH-USDT", T0 + timedelta(hours=1), "3000", "500")) + "\n"
        )
        for _ in range(3):
            query.processAllAvailable()
            time.sleep(1.5)
        query.processAllAvailable()
        assert query.exception() is None
    finally:
        query.stop()

    def key(r: dict[str, Any]) -> tuple[str, datetime]:
        return (r["symbol"], r["scored_at"])

    assert [(key(r), r["features"], r["trade_count"], r["price"]) for r in sorted(got, key=key)] == [
        (key(r), r["features"], r["trade_count"], r["price"]) for r in sorted(expected.records, key=key)
    ]


def _score_rows(n: int) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """n windows of BTC-USDT every 15 min; every 6 h, consensus builds up over 4 windows and a 3 % jump
    follows 5 minutes after the last one closes; a trade every 5 min, otherwise flat at 100."""
    rng = random.Random(11)
    records, jumps = [], set()
    for i in range(n):
        planted = i % 24 >= 20
        x = 0.7 + rng.random() * 0.3 if planted else rng.random() * 0.4
        at = T0 + (i + 1) * STEP
        if i % 24 == 23:
            jumps.add(at + timedelta(minutes=5))
        features = {f: 0.0 for f in FEATURES} | {"consensus": round(x, 6), "hit_rate": 0.5}
        records.append(
            {
                "symbol": "BTC-USDT",
                "scored_at": at,
                "window_start": at - STEP,
                **dict.fromkeys(("p_1h", "p_2h", "p_4h", "max_p"), 0.1),
                "features": json.dumps(features),
                "coefficients_version": "default",
                "price": Decimal(100),
                "trade_count": 10,
                "consensus_score": x * 100,
                "consensus_direction": "bullish",
                "max_volume_z": None,
                "whale_buy_volume": Decimal(0),
                "whale_sell_volume": Decimal(0),
                "flow_ratio": None,
                "flagged": False,
            }
        )
    trades = []
    for k in range((n + 20) * 3):
        at = T0 + k * timedelta(minutes=5)
        trades.append(_trade(k, "BTC-USDT", at, "103" if at in jumps else "100", "1000"))
    return records, trades


@pytest.mark.spark
@pytest.mark.services
def test_fit_predictor_cli_on_a_lake(lake_state: Path, spark: Any, tmp_path: Path) -> None:
    settings = settings_for(lake_state)
    env = {**os.environ, "COATTAIL_STATE_DIR": str(lake_state)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "coattail", "batch", "fit-predictor", "--tier", "large", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=False)

    bad = cli("--start", "2026-01-06", "--end", "2026-01-05")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --start '2026-01-06' must be before --end '2026-01-05'"
    missing = cli("--start", "2026-01-05", "--end", "2026-01-07")  # nothing in the lake yet
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == (  # (after pyiceberg's warnings, if any)
        "error: predictive_scores does not exist yet; run the pipeline with MOD-010 (large tier) first"
    )
    detector = PredictiveScorerDetector()
    detector.configure(settings)
    records, trades = _score_rows(160)
    ensure_core_tables(spark, settings)
    ensure_table(spark, settings, "predictive_scores", detector.table_columns(), detector.partitioning())
    rows_frame(spark, records, detector.table_columns()).writeTo(
        qualified(settings, "predictive_scores")
    ).append()
    spark.createDataFrame(trades, RAW_TRADES_COLUMNS).writeTo(qualified(settings, "raw_trades")).append()
    table = lake.existing_table(settings, "raw_trades")
    assert table is not None
    current = table.current_snapshot()
    assert current is not None
    snapshot = int(current.snapshot_id)
    wrong = cli("--start", "2026-01-05", "--end", "2026-01-07", "--as-of-snapshot", "1")
    assert wrong.returncode == 1
    assert (
        wrong.stderr.strip()
        .splitlines()[-1]
        .startswith("error: raw_trades has no snapshot 1; latest snapshots: ")
    )
    out = tmp_path / "fitted.json"
    fitted = cli(
        "--start",
        "2026-01-05",
        "--end",
        "2026-01-07",
        "--output",
        str(out),
        "--as-of-snapshot",
        str(snapshot),
    )
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    summary = json.loads(fitted.stdout)
    assert summary["snapshot_id"] == snapshot
    assert summary["samples"] == 160
    coefficients = load_coefficients(out)
    assert coefficients.version.startswith("fit-")
    one_hour = json.loads(out.read_text())["horizons"]["1h"]
    assert one_hour["auc"] >= 0.7
    assert one_hour["calibration"]["bins"] == 5
    assert coefficients.models["1h"].weights[FEATURES.index("consensus")] > 0


@pytest.mark.unit
def test_minute_bars_hold_each_minutes_high_and_low() -> None:
    from jobs.batch.predictor import minute_bars

    t = [T0 + timedelta(seconds=s) for s in (5, 30, 59, 60, 125)]
    bars = minute_bars([("BTC-USDT", t[0], 100.0), ("BTC-USDT", t[1], 103.0), ("BTC-USDT", t[2], 99.0),
                        ("BTC-USDT", t[3], 101.0), ("ETH-USDT", t[4], 5.0)])  # fmt: skip
    m0 = int(T0.timestamp() * 1000)
    assert bars == {
        "BTC-USDT": [(m0, 103.0, 99.0), (m0 + 60_000, 101.0, 101.0)],
        "ETH-USDT": [(m0 + 120_000, 5.0, 5.0)],
    }
