"""The wallet label registry: the shipped dataset, operator CSV/JSON files on top, bad rows reported
one line each while the rest loads, and the one address form both chains are looked up in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coattail.chains.labels import ENTITY_TYPES, LabelError, load_labels, normalize_address

BINANCE_14 = "0x28C6c06298d514Db089934071355E5743bf21d60"
WINTERMUTE = "0x0000006daea1723962647b7e189d311d757Fb793"
SOL_COINBASE = "H8sMJSCQxfKiFTCfDR3DUMLPwcRbM61LGFJ8N4dK3WjS"
WHALE = "0x" + "ab" * 20
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def test_shipped_dataset_loads_clean_with_sources() -> None:
    loaded = load_labels()
    assert loaded.problems == []
    rows = loaded.book.rows()
    per_chain = {chain: [r for r in rows if r.blockchain == chain] for chain in ("ethereum", "solana")}
    assert all(10 <= len(found) <= 25 for found in per_chain.values()), {
        k: len(v) for k, v in per_chain.items()
    }
    assert all(r.source.startswith("https://") and r.entity_type in ENTITY_TYPES for r in rows)
    assert {"exchange", "bridge", "market_maker"} <= {r.entity_type for r in per_chain["ethereum"]}
    assert {"exchange", "bridge"} <= {r.entity_type for r in per_chain["solana"]}
    # checksum case does not matter on Ethereum; Solana is matched exactly
    binance = loaded.book.get("ethereum", BINANCE_14.upper().replace("0X", "0x"))
    assert binance is not None
    assert binance.label == "Binance 14"
    assert binance.address == BINANCE_14.lower()
    assert loaded.book.get("solana", SOL_COINBASE) is not None
    assert loaded.book.get("solana", SOL_COINBASE.lower()) is None
    assert loaded.book.get("ethereum", "not an address") is None
    assert loaded.book.get("solana", BINANCE_14) is None  # an Ethereum address is nobody on Solana


def test_normalize_address() -> None:
    assert normalize_address("ethereum", f" {BINANCE_14} ") == BINANCE_14.lower()
    assert normalize_address("solana", SOL_COINBASE) == SOL_COINBASE
    for chain, bad in [
        ("ethereum", "0x1234"),
        ("ethereum", "28c6c06298d514db089934071355e5743bf21d60aa"),
        ("solana", "0OIl" + "1" * 30),  # 0, O, I and l are not base58
        ("solana", "short"),
        ("dogecoin", BINANCE_14),
    ]:
        with pytest.raises(LabelError) as err:
            normalize_address(chain, bad)
        assert "\n" not in str(err.value)


def test_operator_csv_bad_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    csv = tmp_path / "ops.csv"
    csv.write_text(
        "address,blockchain,label,entity_type,source,updated_at\n"
        f"{WHALE},ethereum,Big Whale,whale,desk notes,2026-11-30\n"  # line 2: good
        f"{WHALE[:-2]},ethereum,Short,whale,desk notes,\n"  # line 3: malformed address
        f"0x{'cd' * 20},ethereum,Somebody,hedge_fund,desk notes,\n"  # line 4: unknown entity_type
        f"0x{'ef' * 20},ethereum,,fund,desk notes,\n"  # line 5: no label
        f"0x{'12' * 20},ethereum,Extra,fund,desk notes,2026-11-30,surplus\n"  # line 6: a cell too many
        f"0x{'34' * 20},bitcoin,Wrong chain,fund,desk notes,\n"  # line 7: unknown chain
        f"{BINANCE_14},ethereum,Binance Hot 14,exchange,our own check,\n"  # line 8: overrides the shipped
        f"{SOL_COINBASE},solana,Coinbase Prime,exchange,desk notes,not-a-date\n"  # line 9: bad updated_at
    )
    loaded = load_labels([csv], default_updated_at=NOW)
    lines = {p.split(": ", 1)[0]: p for p in loaded.problems}
    assert sorted(lines) == [f"{csv}, line {n}" for n in (3, 4, 5, 6, 7, 9)], loaded.problems
    assert "Ethereum address" in lines[f"{csv}, line 3"]
    assert "entity_type" in lines[f"{csv}, line 4"]
    assert "label" in lines[f"{csv}, line 5"]
    assert "more cells" in lines[f"{csv}, line 6"]
    assert "bitcoin" in lines[f"{csv}, line 7"]
    assert "updated_at" in lines[f"{csv}, line 9"]
    assert all("\n" not in p for p in loaded.problems)
    whale = loaded.book.get("ethereum", WHALE)
    assert whale is not None
    assert whale.entity_type == "whale"
    assert whale.updated_at == datetime(2026, 11, 30, tzinfo=UTC)
    binance = loaded.book.get("ethereum", BINANCE_14)
    assert binance is not None
    assert binance.label == "Binance Hot 14"
    assert binance.updated_at == NOW
    coinbase = loaded.book.get("solana", SOL_COINBASE)
    assert coinbase is not None
    assert coinbase.label == "Coinbase 1"


def test_operator_json_later_file_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    entry = {
        "address": WHALE,
        "blockchain": "ethereum",
        "label": "Whale A",
        "entity_type": "whale",
        "source": "x",
    }
    first.write_text(json.dumps([entry, "not an object", {**entry, "address": WINTERMUTE, "nickname": "w"}]))
    second.write_text(json.dumps([{**entry, "label": "Whale B", "updated_at": "2026-10-01T12:00:00Z"}]))
    loaded = load_labels([first, second])
    assert loaded.problems == [
        f"{first}, entry 2: expected an object with address, blockchain, label, entity_type, source, got str",
        f"{first}, entry 3: unknown key 'nickname'",
    ]
    whale = loaded.book.get("ethereum", WHALE)
    assert whale is not None
    assert whale.label == "Whale B"
    assert whale.updated_at == datetime(2026, 10, 1, 12, tzinfo=UTC)
    wintermute = loaded.book.get("ethereum", WINTERMUTE)
    assert wintermute is not None
    assert wintermute.label == "Wintermute 1"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("no-header.csv", f"{WHALE},ethereum,Whale,whale,x\n", "no valid header"),
        ("empty.csv", "", "no valid header"),
        ("object.json", json.dumps({"address": WHALE}), "JSON list"),
        ("broken.json", "[{", "not valid JSON"),
    ],
)
def test_unusable_files_are_one_sentence_errors(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LabelError) as err:
        load_labels([path])
    assert expected in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="does not exist"):
        load_labels([tmp_path / "nope.csv"])
    with pytest.raises(LabelError, match="does not exist"):
        load_labels(cfg_dir=tmp_path)  # no shipped dataset there
