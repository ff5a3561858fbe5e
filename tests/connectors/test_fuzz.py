"""Fuzz: a seeded corpus of mutated Binance and Coinbase messages through `normalize` and the normalisers.

Per exchange at least 10,000 lines (stream messages bare and in envelopes), built from realistic
messages by (a) every poison class of issue 18 (timestamps Python/Arrow/Spark cannot hold or that are
absurd, huge exponents, non-ASCII digits, ``1_000``, long/boolean/list ids, unhashable types, symbols
with a trailing newline, unknown message types, exchange names in another case, bad ``received_at``),
(b) random field drops and replacements with arbitrary JSON values, and (c) byte-level damage.

Asserted: no exception other than NormalizeError leaves a normaliser and none at all leaves
``run_normalize`` (and no dead letter is the safety net's "internal error"); every line is accounted
for exactly once, a line holding several trades included; each emitted trade satisfies the contract;
memory stays bounded (tracemalloc peak) and so does the output.
"""

from __future__ import annotations

import contextlib
import io
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from coattail.contracts import loads_trade
from connectors.normalize_cli import run_normalize
from connectors.rawlines import parse_line
from connectors.registry import normalizer
from connectors.simulator import simulate
from connectors.trade import NormalizeError, now_iso

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"
LINES_PER_EXCHANGE = 12_000
PEAK_BYTES_BOUND = 16 * 1024 * 1024  # tracemalloc peak while normalising one exchange's corpus
TRADE_LINE_MAX_BYTES = 600  # a normalised trade is ~300 bytes; "1E+999999" once made one of 2 MB

TIMESTAMP_POISON: list[Any] = [
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "2262-04-12T00:00:00Z",
    "2008-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "２０２３-11-14T22:13:20Z", "2023-11-14 22:13:20.123456Z",
    "2023-11-14T22:13:20", "2023-02-30T00:00:00Z", "2023-11-14T22:13:20.123456+14:00", "", "x" * 5000,
]  # fmt: skip
EPOCH_POISON: list[Any] = [
    253_402_300_799_999, 253_402_300_800_000, 1_700_000_000 * 1_000_000, 4_102_444_800_000, 2**63 - 1,
    2**64 - 1, -1, 0, 1, 1_230_940_799_999, 1_700_000_000, 1.7e12, "1700000000000", True,
]  # fmt: skip
NUMBER_POISON: list[Any] = [
    "1e999999", "1E+999999", "1e999999999", "1e-999999999", "1E5", "١٢٣", "１２３", "1_000", "٠.٥",
    " 1", "1 ", "+1", "-1", "0", "0.000", "NaN", "-Infinity", "inf", "sNaN", "1.2.3", ".5", "5.",
    "9" * 21, "0." + "0" * 18 + "1", "9" * 20 + ".5", "9" * 5000, "", 1.5, 1, True, None, [], {},
]  # fmt: skip
ID_POISON: list[Any] = [
    True, False, [], {}, None, -1, 2**63, 2**64 - 1, 1.0, "9" * 5000, "12a", "١٢", "-5", "", " 1",
]  # fmt: skip
SYMBOL_POISON: list[Any] = [
    "BTC-USD\n", "BTCUSDT\n", "btc-usd", "BTC_USD", "BTC-USD ", "\nBTC-USD", "ß-USD", "BTC-" + "X" * 30,
    "", "X" * 5000, 1, None, [], {},
]  # fmt: skip
TYPE_POISON: list[Any] = [{}, [], None, 1, True, "unknown_type", "MATCH", "Trade", "x" * 5000]
EXCHANGE_NAMES: list[Any] = [
    "Binance",
    "BINANCE",
    "Coinbase",
    "COINBASE",
    "kraken",
    "",
    1,
    None,
    [],
    "b" * 300,
]
JSON_VALUES: list[Any] = [None, True, False, 0, -1, 2**63 - 1, 1.5, "", "x", [], {}, [[[]]], {"a": {}}]


def _realistic(exchange: str) -> list[dict[str, Any]]:
    """Realistic raw messages: the simulator's plus the hand-written fixtures (incl. control messages)."""
    lines, _ = simulate(seed=18, minutes=10, rate=8, start=datetime(2025, 6, 1, tzinfo=UTC))
    raws = [dict(line) for line in lines if line["exchange"] == exchange]
    if exchange == "coinbase":  # Advanced Trade batches too: one line, several trades
        matches = [r for r in raws if r["raw"].get("type") == "match"]
        for i in range(0, len(matches) - 4, 4):
            rows = [_advanced_row(m["raw"]) for m in matches[i : i + 1 + i % 4]]
            batch = {"channel": "market_trades", "events": [{"type": "update", "trades": rows}]}
            raws.append({"exchange": exchange, "received_at": matches[i + 3]["received_at"], "raw": batch})
    fixture = "binance.jsonl" if exchange == "binance" else "coinbase.jsonl"
    received = "2023-11-14T22:13:25.000Z"  # recorded lines of the older ms form still read
    for text in (FIXTURES / fixture).read_text().splitlines():
        raws.append({"exchange": exchange, "received_at": received, "raw": orjson.loads(text)})
    return raws


def _advanced_row(match: dict[str, Any]) -> dict[str, Any]:
    row = {k: match[k] for k in ("trade_id", "product_id", "price", "size", "side", "time")}
    return row | {"trade_id": str(row["trade_id"]), "side": str(row["side"]).upper()}


def _trade_body(raw: dict[str, Any]) -> dict[str, Any]:
    """The dict that holds the trade fields (Binance envelope data, Coinbase batch row or message)."""
    if isinstance(raw.get("data"), dict):
        return raw["data"]  # type: ignore[no-any-return]
    events = raw.get("events")
    if isinstance(events, list) and events and isinstance(events[0], dict):
        trades = events[0].get("trades")
        if isinstance(trades, list) and trades and isinstance(trades[0], dict):
            return trades[0]  # type: ignore[no-any-return]
    return raw


POISON_BY_FIELD: dict[str, list[Any]] = {
    "T": EPOCH_POISON, "E": EPOCH_POISON, "time": TIMESTAMP_POISON, "p": NUMBER_POISON,
    "q": NUMBER_POISON, "price": NUMBER_POISON, "size": NUMBER_POISON, "a": ID_POISON, "t": ID_POISON,
    "trade_id": ID_POISON, "s": SYMBOL_POISON, "product_id": SYMBOL_POISON, "e": TYPE_POISON,
    "type": TYPE_POISON, "channel": TYPE_POISON, "m": JSON_VALUES, "side": ["BUY ", "up", "", *JSON_VALUES],
}  # fmt: skip


def _mutate(rng: random.Random, line: dict[str, Any]) -> dict[str, Any]:
    raw = orjson.loads(orjson.dumps(line["raw"]))  # deep copy
    env = dict(line, raw=raw)
    body = _trade_body(raw) if isinstance(raw, dict) else {}
    choice = rng.random()
    if choice < 0.55 and body:
        fields = [k for k in body if k in POISON_BY_FIELD] or list(body)
        key = rng.choice(fields)
        body[key] = rng.choice(POISON_BY_FIELD.get(key, JSON_VALUES))
    elif choice < 0.65 and body:
        del body[rng.choice(list(body))]
    elif choice < 0.75 and body:
        body[rng.choice(list(body))] = rng.choice(JSON_VALUES)
    elif choice < 0.82:
        env["received_at"] = rng.choice(TIMESTAMP_POISON)
    elif choice < 0.88:
        env["exchange"] = rng.choice(EXCHANGE_NAMES)
    elif choice < 0.92:
        env["raw"] = rng.choice(JSON_VALUES)
    elif choice < 0.96 and isinstance(raw, dict) and isinstance(raw.get("events"), list):
        raw["events"] = raw["events"] * rng.randint(2, 4)  # bigger Coinbase batches: several trades/line
    # else: unchanged (a valid message stays valid among the junk)
    return env


def _damage(rng: random.Random, text: bytes) -> bytes:
    """Byte-level damage on some lines: truncation, a flipped byte, inserted junk (never a newline)."""
    roll = rng.random()
    if roll < 0.04:
        text = text[: rng.randrange(len(text) + 1)]
    elif roll < 0.07:
        i = rng.randrange(len(text))
        text = text[:i] + bytes([rng.randrange(256)]) + text[i + 1 :]
    elif roll < 0.09:
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice([b"\xff\xfe", b"\x00", b"}", b'"', b"[" * 2000, b" "]) + text[i:]
    return text.replace(b"\n", b" ").replace(b"\r", b" ")


def _corpus(exchange: str, seed: int) -> tuple[list[bytes], list[bytes]]:
    """(envelope lines, bare message lines), both mutated; a few blank and hand-made lines among them."""
    rng = random.Random(seed)
    base = _realistic(exchange)
    envelopes: list[bytes] = []
    bare: list[bytes] = []
    while len(envelopes) + len(bare) < LINES_PER_EXCHANGE:
        env = _mutate(rng, rng.choice(base))
        if rng.random() < 0.6:
            envelopes.append(_damage(rng, orjson.dumps(env)))
        else:
            bare.append(_damage(rng, orjson.dumps(env["raw"])))
    # JSON integers orjson cannot even write (a 5,000-digit trade id), blank lines, a 90-byte bomb.
    long_id = b"9" * 5000
    envelopes += [
        b'{"exchange":"' + exchange.encode() + b'","raw":{"e":"trade","t":' + long_id + b"}}",
        b'{"exchange":"coinbase","raw":{"type":"match","trade_id":' + long_id + b"}}",
        b"",
        b"   ",
        b'{"exchange":"binance","raw":{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1e999999999","q":"1","T":1}}',
    ]
    return envelopes, bare


def _outcome(exchange: str | None, line: bytes) -> tuple[str, int]:
    """Ground truth for one line straight from the normaliser classes: (trades|ignored|dead, trades)."""
    if not line.strip():
        return "ignored", 0
    try:
        parsed = parse_line(line)
        name = parsed.exchange or exchange
        if name is None:
            return "dead", 0
        if exchange is not None and name != exchange:
            return "ignored", 0
        try:
            norm = normalizer(name)
        except ValueError:
            return "dead", 0
        trades = norm.message(parsed.message, parsed.received_at or now_iso())
    except NormalizeError:
        return "dead", 0
    return ("trades", len(trades)) if trades else ("ignored", 0)


def _normalise(lines: list[bytes], exchange: str | None) -> tuple[dict[str, int], bytes, bytes, int]:
    src = io.BytesIO(b"\n".join(lines) + b"\n")
    out, dlq = io.BytesIO(), io.BytesIO()
    tracemalloc.start()
    try:
        counts = run_normalize(src, out, exchange, dlq)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return counts, out.getvalue(), dlq.getvalue(), peak


@pytest.mark.parametrize("exchange", ["binance", "coinbase"])
def test_fuzzed_corpus_is_fully_accounted_for_and_bounded(exchange: str) -> None:
    started = time.monotonic()
    envelopes, bare = _corpus(exchange, seed=1800 + len(exchange))
    assert len(envelopes) + len(bare) >= 10_000
    assert len(envelopes) > 3000
    assert len(bare) > 3000
    for lines, default in ((envelopes, None), (bare, exchange)):
        counts, out, dlq, peak = _normalise(lines, default)
        assert counts["lines"] == len(lines)
        assert counts["trade_lines"] + counts["ignored"] + counts["dead_lettered"] == counts["lines"]

        expected = {"trades": 0, "trade_lines": 0, "ignored": 0, "dead_lettered": 0}
        for line in lines:
            kind, n = _outcome(default, line)  # only NormalizeError may leave a normaliser
            expected["trade_lines" if kind == "trades" else "dead_lettered" if kind == "dead" else kind] += 1
            expected["trades"] += n
        assert {k: counts[k] for k in expected} == expected
        assert counts["trades"] > counts["trade_lines"] or exchange == "binance"  # batches: >1 trade/line
        assert counts["dead_lettered"] > len(lines) // 4  # the corpus really is mostly poison

        trades = out.splitlines()
        assert len(trades) == counts["trades"]
        for text in trades:
            assert len(text) <= TRADE_LINE_MAX_BYTES
            event = loads_trade(text)  # the hot path never emits what the contract refuses
            assert (event.timestamp - event.ingestion_timestamp).total_seconds() <= 300
        letters = [orjson.loads(t) for t in dlq.splitlines()]
        assert len(letters) == counts["dead_lettered"]
        for letter in letters:
            assert letter["reason"]
            assert "\n" not in letter["reason"]
            assert not letter["reason"].startswith("internal error"), letter
            assert len(letter["reason"]) <= 500
        assert len(dlq) <= 8 * sum(len(line) + 600 for line in lines)  # no letter grows beyond its line
        assert peak < PEAK_BYTES_BOUND, f"tracemalloc peak {peak / 2**20:.1f} MiB"
    assert time.monotonic() - started < 60


def _check_only_normalize_errors(message: Callable[[Any, str], list[Any]], msg: Any) -> None:
    with contextlib.suppress(NormalizeError):
        message(msg, "2025-06-01T00:10:00.000000Z")


@pytest.mark.parametrize("exchange", ["binance", "coinbase"])
def test_normalisers_raise_only_normalize_errors_on_any_json_in_any_field(exchange: str) -> None:
    """Every field of every realistic message, replaced by every poison/JSON value, one at a time."""
    norm = normalizer(exchange)
    values = [*TIMESTAMP_POISON, *EPOCH_POISON, *NUMBER_POISON, *ID_POISON, *SYMBOL_POISON,
              *TYPE_POISON, *JSON_VALUES]  # fmt: skip
    seen = 0
    for line in _realistic(exchange)[:40]:
        raw = line["raw"]
        body = _trade_body(raw)
        for key in list(body):
            for value in values:
                msg = orjson.loads(orjson.dumps(raw))
                target = _trade_body(msg)
                target[key] = value
                _check_only_normalize_errors(norm.message, msg)
                seen += 1
    assert seen > 10_000
