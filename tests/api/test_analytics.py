"""The analytics store (DynamoDB Local and in memory, same semantics) and GET /backtests/latest,
GET /predictions/{symbol} under uvicorn."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from coattail.hotstore import DynamoAlertStore
from coattail.hotstore.analytics import (
    AnalyticsStoreError,
    DynamoAnalyticsStore,
    MemoryAnalyticsStore,
    encode_row,
)
from tests.api.helpers import LiveServer

pytestmark = pytest.mark.services
DAY = date(2026, 1, 5)
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def result(module: str, symbol: str, horizon: str, **extra: Any) -> dict[str, Any]:
    """A ``backtest_results`` row as the back-test step writes it (Spark/pandas types included)."""
    return {
        "backtest_date": DAY,
        "module_id": module,
        "symbol": symbol,
        "horizon": horizon,
        "n": 24,
        "hit_rate": 0.625,
        "mean_return": Decimal("0.0042"),
        "sharpe": 0.8,
        "max_drawdown": 0.031,
        "pending": 0,
        "unpriced": 1,
        "run_id": "run-1",
        "window_start": T0 - timedelta(days=1),
        "window_end": T0,
        "snapshot_id": 8237419,
        **extra,
    }


def run(run_id: str = "run-1", **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "backtest_date": DAY,
        "start": T0 - timedelta(days=1),
        "end": T0,
        "as_of": T0 + timedelta(hours=1),
        "snapshot_id": 8237419,
        "alerts_evaluated": 120,
        "pending": 3,
        "report": "/tmp/report.html",
        **extra,
    }


def score(symbol: str, at: datetime, p: float) -> dict[str, Any]:
    """A ``predictive_scores`` row as MOD-010 writes it (features as a JSON text)."""
    return {
        "symbol": symbol,
        "scored_at": at,
        "window_start": at - timedelta(minutes=15),
        "p_1h": p,
        "p_2h": min(1.0, p + 0.05),
        "p_4h": float("nan"),
        "features": orjson.dumps({"consensus_score": 81.5, "max_volume_z": 6.2, "flow_ratio": 0.93}).decode(),
        "coefficients_version": "fit-2026-01-04",
        "price": Decimal("60123.45"),
    }


@pytest.fixture(params=["dynamodb", "memory"])
def analytics(request: pytest.FixtureRequest) -> Iterator[DynamoAnalyticsStore | MemoryAnalyticsStore]:
    if request.param == "memory":
        yield MemoryAnalyticsStore()
    else:
        yield DynamoAnalyticsStore(request.getfixturevalue("store"))


# -- the store ----------------------------------------------------------------------------------------
def test_rows_of_any_column_type_encode_to_json() -> None:
    text = encode_row(
        {"d": DAY, "t": T0, "naive": datetime(2026, 1, 5), "x": Decimal("1.5"), "nan": math.nan, "n": None}
    )
    assert orjson.loads(text) == {
        "d": "2026-01-05",
        "t": "2026-01-05T12:00:00.000000Z",
        "naive": "2026-01-05T00:00:00.000000Z",
        "x": 1.5,
        "nan": None,
        "n": None,
    }
    assert orjson.loads(encode_row({"inf": Decimal("Infinity"), "nested": {"v": math.inf}})) == {
        "inf": None,
        "nested": {"v": None},
    }


def test_nothing_stored_is_none_and_empty(analytics: DynamoAnalyticsStore | MemoryAnalyticsStore) -> None:
    assert analytics.latest_backtest() is None
    assert analytics.predictions("BTC-USDT") == []


def test_the_latest_run_and_its_rows(analytics: DynamoAnalyticsStore | MemoryAnalyticsStore) -> None:
    rows = [
        result("MOD-007", "BTC-USDT", "24h"),
        result("MOD-002", "ETH-USDT", "4h"),
        result("MOD-002", "ETH-USDT", "1h", sharpe=None, hit_rate=math.nan),
        result("MOD-002", "BTC-USDT", "1h"),
    ]
    assert analytics.put_backtest(run(), rows) == 4
    found = analytics.latest_backtest()
    assert found is not None
    assert found["run"]["run_id"] == "run-1"
    assert found["run"]["backtest_date"] == "2026-01-05"
    assert found["run"]["as_of"] == "2026-01-05T13:00:00.000000Z"
    assert found["run"]["alerts_evaluated"] == 120
    assert found["run"]["results"] == 4
    order = [(r["module_id"], r["symbol"], r["horizon"]) for r in found["results"]]
    assert order == [
        ("MOD-002", "BTC-USDT", "1h"),
        ("MOD-002", "ETH-USDT", "1h"),
        ("MOD-002", "ETH-USDT", "4h"),
        ("MOD-007", "BTC-USDT", "24h"),
    ]
    nan_row = found["results"][1]
    assert nan_row["hit_rate"] is None
    assert nan_row["sharpe"] is None
    assert found["results"][0]["mean_return"] == 0.0042
    # The same run again with fewer rows: its old rows go; a newer run becomes the latest.
    assert analytics.put_backtest(run(), rows[:1]) == 1
    again = analytics.latest_backtest()
    assert again is not None
    assert [r["module_id"] for r in again["results"]] == ["MOD-007"]
    analytics.put_backtest(
        run("run-2", alerts_evaluated=7), [result("MOD-001", "BTC-USD", "1h", run_id="run-2")]
    )
    newest = analytics.latest_backtest()
    assert newest is not None
    assert newest["run"]["run_id"] == "run-2"
    assert [r["module_id"] for r in newest["results"]] == ["MOD-001"]


def test_a_run_needs_an_id_and_bad_rows_are_skipped(
    analytics: DynamoAnalyticsStore | MemoryAnalyticsStore,
) -> None:
    with pytest.raises(AnalyticsStoreError, match="run_id"):
        analytics.put_backtest({"backtest_date": DAY}, [])
    assert analytics.put_backtest(run(), [result("MOD-002", "BTC-USDT", "1h"), {"module_id": "MOD-003"}]) == 1


def test_predictions_newest_first_with_a_limit(
    analytics: DynamoAnalyticsStore | MemoryAnalyticsStore,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [score("BTC-USDT", now - timedelta(minutes=15 * i), 0.1 * i) for i in range(6)]
    rows.append(score("ETH-USDT", now, 0.9))
    rows.append({"symbol": "not a symbol", "scored_at": now})
    assert analytics.put_predictions(rows) == 7
    assert analytics.put_predictions(rows[:2]) == 2  # replays overwrite
    btc = analytics.predictions("BTC-USDT")
    assert [r["p_1h"] for r in btc] == pytest.approx([0.1 * i for i in range(6)])
    assert btc[0]["scored_at"] == now.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert btc[0]["p_4h"] is None
    assert btc[0]["price"] == 60123.45
    assert orjson.loads(btc[0]["features"])["flow_ratio"] == 0.93
    assert len(analytics.predictions("BTC-USDT", limit=2)) == 2
    assert [r["symbol"] for r in analytics.predictions("ETH-USDT")] == ["ETH-USDT"]
    with pytest.raises(AnalyticsStoreError, match="BASE-QUOTE"):
        analytics.predictions("btc")


def test_expired_items_are_not_read() -> None:
    memory = MemoryAnalyticsStore(
        prediction_retention=timedelta(hours=1), backtest_retention=timedelta(hours=1)
    )
    old = datetime.now(UTC) - timedelta(hours=3)
    memory.put_predictions([score("BTC-USDT", old, 0.5)], now=old)
    memory.put_backtest(run(), [result("MOD-002", "BTC-USDT", "1h")], now=old)
    assert memory.predictions("BTC-USDT") == []
    assert memory.latest_backtest() is None


# -- over HTTP ----------------------------------------------------------------------------------------
def test_endpoints_404_until_something_ran_then_serve_it(live: LiveServer, store: DynamoAlertStore) -> None:
    with live.client() as client:
        missing = client.get("/backtests/latest")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no back-test has run yet"}
        none = client.get("/predictions/BTC-USDT")
        assert none.status_code == 404
        assert none.json() == {"detail": "no predictive score for BTC-USDT"}

        written = DynamoAnalyticsStore(store)  # the pipeline's writer over the same table
        written.put_backtest(
            run(), [result("MOD-006", "BTC-USDT", "1h"), result("MOD-002", "BTC-USDT", "4h")]
        )
        now = datetime.now(UTC).replace(microsecond=0)
        written.put_predictions(
            [score("BTC-USDT", now - timedelta(minutes=15 * i), 0.2 + 0.1 * i) for i in range(4)]
        )

        latest = client.get("/backtests/latest")
        assert latest.status_code == 200
        body = latest.json()
        assert body["run"]["run_id"] == "run-1"
        assert body["run"]["report"] == "/tmp/report.html"
        assert [(r["module_id"], r["horizon"], r["n"], r["hit_rate"]) for r in body["results"]] == [
            ("MOD-002", "4h", 24, 0.625),
            ("MOD-006", "1h", 24, 0.625),
        ]
        scores = client.get("/predictions/BTC-USDT")
        assert scores.status_code == 200
        got = scores.json()
        assert got["symbol"] == "BTC-USDT"
        assert [p["p_1h"] for p in got["predictions"]] == pytest.approx([0.2, 0.3, 0.4, 0.5])
        assert got["predictions"][0]["features"] == {
            "consensus_score": 81.5,
            "max_volume_z": 6.2,
            "flow_ratio": 0.93,
        }
        assert got["predictions"][0]["p_4h"] is None
        limited = client.get("/predictions/BTC-USDT", params={"limit": 2}).json()
        assert len(limited["predictions"]) == 2
        assert client.get("/predictions/ETH-USDT").status_code == 404
        for bad in ("btc-usdt", "BTCUSDT", "BTC-USDT-X"):
            answer = client.get(f"/predictions/{bad}")
            assert answer.status_code == 422, bad
            assert set(answer.json()) == {"detail"}
        assert client.get("/predictions/BTC-USDT", params={"limit": 0}).status_code == 422
        spec = client.get("/openapi.json").json()["paths"]
        assert {"/backtests/latest", "/predictions/{symbol}"} <= set(spec)
        assert "404" in spec["/backtests/latest"]["get"]["responses"]
