"""Contracts: exact decimals, strict validation, orjson round trips, deterministic ids, Spark schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coattail.contracts import (
    Alert,
    ContractError,
    TradeEvent,
    alert_id,
    dumps,
    loads_alert,
    loads_trade,
    trade_event_id,
)

pytestmark = pytest.mark.unit

decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("99999999"), places=8)
timestamps = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
symbols = st.from_regex(r"[A-Z]{2,6}-[A-Z]{3,5}", fullmatch=True)


def _trade(**overrides: object) -> TradeEvent:
    fields: dict[str, object] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "trade_id": 42,
        "price": "67432.50",
        "quantity": "0.5",
        "side": "buy",
        "timestamp": "2025-02-05T10:30:00.123Z",
        "ingestion_timestamp": "2025-02-05T10:30:00.456Z",
    }
    fields.update(overrides)
    return TradeEvent.create(**fields)  # type: ignore[arg-type]


@given(
    price=decimals, quantity=decimals, ts=timestamps, symbol=symbols, side=st.sampled_from(["buy", "sell"])
)
@settings(max_examples=300, deadline=None)
def test_trade_round_trip_is_exact(
    price: Decimal, quantity: Decimal, ts: datetime, symbol: str, side: str
) -> None:
    event = _trade(
        price=str(price),
        quantity=str(quantity),
        timestamp=ts,
        ingestion_timestamp=ts,
        symbol=symbol,
        side=side,
    )
    assert event.quote_volume == price * quantity  # exact, no float on the way
    back = loads_trade(dumps(event))
    assert back == event
    assert back.price == price
    assert back.quantity == quantity
    wire = orjson.loads(dumps(event))
    assert Decimal(wire["price"]) == price  # decimals travel as strings
    assert wire["timestamp"].endswith("Z")


@given(exchange=st.sampled_from(["binance", "coinbase"]), symbol=symbols, trade_id=st.integers(0, 2**63))
def test_trade_event_id_is_deterministic(exchange: str, symbol: str, trade_id: int) -> None:
    assert trade_event_id(exchange, symbol, trade_id) == trade_event_id(exchange, symbol, str(trade_id))
    assert trade_event_id(exchange, symbol, trade_id) != trade_event_id(exchange, symbol, trade_id + 1)
    other = "coinbase" if exchange == "binance" else "binance"
    assert trade_event_id(exchange, symbol, trade_id) != trade_event_id(other, symbol, trade_id)


def test_same_trade_twice_is_the_same_event() -> None:
    first = _trade(ingestion_timestamp="2025-02-05T10:30:01.000Z")
    again = _trade(ingestion_timestamp="2025-02-05T10:31:00.000Z")
    assert first.event_id == again.event_id


@given(window=timestamps, symbol=symbols)
def test_alert_id_is_deterministic(window: datetime, symbol: str) -> None:
    a = alert_id("MOD-001", symbol, "binance", window)
    assert a == alert_id("mod-001", symbol, "binance", window)
    assert a != alert_id("MOD-001", symbol, "binance", window + timedelta(seconds=60))
    assert a != alert_id("MOD-003", symbol, "binance", window)


def test_exact_decimal_parsing_beyond_float_precision() -> None:
    event = _trade(price="67432.123456789012345678", quantity="1.000000000000000001")
    assert str(event.price) == "67432.123456789012345678"
    assert loads_trade(dumps(event)).quote_volume == Decimal("67432.123456789012345678") * Decimal(
        "1.000000000000000001"
    )


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("price", 1.5, "floats are not accepted"),
        ("price", "-1", "greater than 0"),
        ("price", "abc", "not a decimal"),
        ("price", "NaN", "not a finite"),
        ("quantity", "0", "greater than 0"),
        ("side", "long", "side"),
        ("symbol", "btcusdt", "symbol"),
        ("timestamp", "2025-02-05T10:30:00", "no UTC offset"),
        ("timestamp", "yesterday", "not an ISO-8601"),
    ],
)
def test_trade_rejects_bad_fields(field: str, value: object, needle: str) -> None:
    assert_refused(field, value, needle)


def test_trade_rejects_unknown_and_missing_fields_and_junk() -> None:
    payload = orjson.loads(dumps(_trade()))
    with pytest.raises(ContractError, match="venue: unknown field"):
        loads_trade(orjson.dumps({**payload, "venue": "x"}))
    del payload["price"]
    with pytest.raises(ContractError, match="price"):
        loads_trade(orjson.dumps(payload))
    with pytest.raises(ContractError, match="not JSON"):
        loads_trade(b'{"event_id": ')
    with pytest.raises(ContractError, match="JSON object"):
        loads_trade(b"[1, 2]")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("timestamp", "9999-12-31T23:59:59Z", "not before 2262-01-01"),
        ("timestamp", "9999-12-31T23:59:59-05:00", "outside the representable range"),
        ("timestamp", "0001-01-01T00:00:00+01:00", "outside the representable range"),
        ("timestamp", "2008-12-31T23:59:59Z", "before 2009-01-03"),
        ("timestamp", "2100-01-01T00:00:00Z", "more than 300 s after ingestion_timestamp"),
        ("timestamp", "2025-02-05T10:35:01Z", "more than 300 s after ingestion_timestamp"),
        ("ingestion_timestamp", "9999-12-31T23:59:59-05:00", "outside the representable range"),
        ("timestamp", "２０２５-02-05T10:30:00Z", "not an ISO-8601"),
        ("timestamp", "2025-02-05T10:30:00Z" + " " * 100, "longer than"),
        ("price", "1e999999", "exponent has more than 3 digits"),
        ("price", "1E+999999", "exponent has more than 3 digits"),
        ("price", "1e999999999", "exponent has more than 3 digits"),
        ("price", "1e999", "too large"),
        ("price", "1e-999", "fraction digits"),
        ("price", "1" * 21, "too large"),
        ("price", "1" * 65, "longer than 64"),
        ("price", "١٢٣", "not a decimal"),
        ("price", "１２３", "not a decimal"),
        ("price", "1_000", "not a decimal"),
        ("quantity", True, "boolean"),
        ("symbol", "BTC-USD\n", "symbol"),
        ("exchange", "Binance", "exchange"),
        ("event_id", True, "valid string"),
        ("event_id", [], "valid string"),
    ],
)
def test_trade_rejects_unrepresentable_and_absurd_values(field: str, value: object, needle: str) -> None:
    assert_refused(field, value, needle)


def assert_refused(field: str, value: object, needle: str) -> None:
    """The trade with ``field`` set to ``value`` is refused with one line that contains ``needle``."""
    payload = orjson.loads(dumps(_trade()))
    payload[field] = value
    with pytest.raises(ContractError) as err:
        loads_trade(orjson.dumps(payload))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_huge_integers_are_refused_without_converting_them() -> None:
    payload = orjson.loads(dumps(_trade())) | {"price": 10**5000}
    with pytest.raises(ValidationError, match="more than 20 digits"):
        TradeEvent.model_validate(payload)


def test_the_timestamp_window_edges_are_accepted() -> None:
    assert _trade(timestamp="2009-01-03T00:00:00Z", ingestion_timestamp="2009-01-03T00:00:00Z")
    assert _trade(timestamp="2025-02-05T10:35:00.456Z")  # exactly 300 s after ingestion
    late = _trade(timestamp="2009-01-03T00:00:00Z", ingestion_timestamp="2261-12-31T23:59:59.999Z")
    assert late.timestamp.year == 2009  # arriving late is the quality stage's business, not invalid


@pytest.mark.parametrize(
    ("trade_id", "needle"),
    [(True, "string or an integer"), ([], "string or an integer"), (-1, "[0, 2^63)"), (2**63, "[0, 2^63)"),
     ("huge", "[0, 2^63)"), ("", "printable ASCII"), ("1" * 65, "printable ASCII"), ("1\n", "printable")],
)  # fmt: skip
def test_create_refuses_unusable_trade_ids(trade_id: object, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        _trade(trade_id=10**5000 if trade_id == "huge" else trade_id)


def test_create_refuses_a_quote_volume_spark_cannot_hold() -> None:
    with pytest.raises(ValueError, match="too large"):
        _trade(price="9" * 15, quantity="9" * 15)


def test_timestamps_normalise_to_utc_z() -> None:
    event = _trade(timestamp="2025-02-05T12:30:00.123+02:00")
    assert event.timestamp == datetime(2025, 2, 5, 10, 30, 0, 123000, tzinfo=UTC)
    assert orjson.loads(dumps(event))["timestamp"] == "2025-02-05T10:30:00.123000Z"


def _alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "module_id": "MOD-002",
        "alert_type": "whale_trade",
        "symbol": "BTC-USDT",
        "exchange": "binance",
        "severity": "high",
        "detected_at": "2025-02-05T10:30:00.123Z",
        "message": "whale buy 600,000 USDT",
        "details": {"quote_volume": 600000.0, "side": "buy"},
        "evidence": ("some-event-id",),
    }
    fields.update(overrides)
    return Alert.create(**fields)  # type: ignore[arg-type]


def test_alert_round_trip_and_ttl() -> None:
    alert = _alert()
    assert alert.ttl_epoch == int(datetime(2025, 2, 6, 10, 30, 0, 123000, tzinfo=UTC).timestamp())
    assert loads_alert(dumps(alert)) == alert
    assert alert.alert_id == _alert(message="other text").alert_id  # id follows evidence only


def test_alert_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="severity"):
        _alert(severity="extreme")
    with pytest.raises(ValueError, match="module_id"):
        _alert(module_id="M1")
    with pytest.raises(ValueError, match="NaN"):
        _alert(details={"z": float("nan")})


def test_spark_schema_is_derived_from_the_models() -> None:
    from pyspark.sql import types as T

    from coattail.contracts.spark import spark_schema

    trade = spark_schema(TradeEvent)
    assert trade.fieldNames() == list(TradeEvent.model_fields)
    assert trade["price"].dataType == T.DecimalType(38, 18)
    assert trade["timestamp"].dataType == T.TimestampType()
    assert not trade["event_id"].nullable
    alert = spark_schema(Alert)
    assert alert["exchange"].nullable
    assert alert["details"].dataType == T.StringType()
    assert alert["ttl_epoch"].dataType == T.LongType()
