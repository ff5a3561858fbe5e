"""The chain simulator's wallets scenario on a real anvil: informed, noise and whale wallets, event time.

One `coattail simulate-chain --wallets` run (two and a half hours of block time) is checked against the
chain and against its own CEX reference trades, read the way the wallet scorer reads them: P(t) is the
last trade at or before t.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from coattail.contracts.codec import loads_trade
from connectors.chainsim.deploy import contract
from tests.chains.conftest import ChainWorld

pytestmark = pytest.mark.services

# The simulator's defaults but the seed: 6 h of block time, MOD-004's 60 min horizon, 3 informed and 80
# noise wallets (enough that "top 5 %" and "top 1 %" are ranks, not ties with the line).
STEPS, BLOCK_SECONDS, HORIZON_MINUTES, NOISE = 360, 60, 60, 80
ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")


@dataclass(frozen=True)
class Run:
    world: ChainWorld
    truth: dict[str, Any]
    out: Path
    stderr: str
    began: float

    @property
    def labels(self) -> Path:
        return self.out / "labels.csv"

    @property
    def trades(self) -> Path:
        return self.out / "cex.jsonl"


@pytest.fixture(scope="module")
def wallets_run(chain_world: ChainWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One scenario run on the session chain, reverted (state and clock) when the module is done."""
    w3 = chain_world.w3
    out = tmp_path_factory.mktemp("wallets")
    (out / "deployment.json").write_text(chain_world.deployment.to_json())
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    argv = [
        sys.executable, "-m", "coattail", "simulate-chain", "--rpc-url", chain_world.node.url,
        "--wallets", "--steps", str(STEPS), "--block-seconds", str(BLOCK_SECONDS),
        "--horizon-minutes", str(HORIZON_MINUTES), "--informed", "3",
        "--noise", str(NOISE), "--whales", "2", "--seed", "21", "--deployment", str(out / "deployment.json"),
        "--truth", str(out / "truth.json"), "--labels-out", str(out / "labels.csv"),
        "--cex-trades-out", str(out / "cex.jsonl"), "--raw-out", str(out / "raw.jsonl"),
        "--tokens-out", str(out / "tokens.yaml"),
    ]  # fmt: skip
    began = time.time()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        truth = json.loads((out / "truth.json").read_text())
        yield Run(chain_world, truth, out, done.stderr, began)
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


def _reference(path: Path) -> tuple[list[int], list[Decimal]]:
    trades = [loads_trade(line) for line in path.read_bytes().splitlines()]
    times = [int(t.timestamp.timestamp()) for t in trades]
    return times, [t.price for t in trades]


def _price_at(times: list[int], prices: list[Decimal], at: int) -> Decimal:
    i = bisect.bisect_right(times, at) - 1
    assert i >= 0, f"no reference price at or before {at}"
    return prices[i]


def _hit(entry: dict[str, Any], times: list[int], prices: list[Decimal]) -> bool:
    """The trade's direction agrees with the reference price's move over the horizon."""
    t = int(entry["block_timestamp"])
    assert t + HORIZON_MINUTES * 60 <= times[-1], "the horizon ends inside the run"
    move = _price_at(times, prices, t + HORIZON_MINUTES * 60) - _price_at(times, prices, t)
    bought = entry["token_out_symbol"] == "WETH"
    assert entry["side"] == ("buy" if bought else "sell")
    return move > 0 if bought else move < 0


def test_the_truth_lists_the_planted_wallets(wallets_run: Run) -> None:
    wallets = wallets_run.truth["wallets"]
    assert len(wallets["informed"]) == 3
    assert len(wallets["noise"]) == NOISE
    assert [w["entity_type"] for w in wallets["whales"]] == ["whale", "fund"]
    assert [e["address"] for e in wallets["exchanges"]] == [
        "0x28c6c06298d514db089934071355e5743bf21d60",
        "0x71660c4005ba85c37ccec55d0c4493e66fe775d3",
    ]
    every = [*wallets["informed"], *wallets["noise"], *(w["address"] for w in wallets["whales"])]
    assert len(set(every)) == len(every)
    assert all(ADDRESS.match(a) for a in every)
    swaps: dict[str, list[dict[str, Any]]] = {}
    for e in wallets_run.truth["events"]:
        if e["purpose"] in ("informed", "noise"):
            assert e["kind"] == "swap"
            assert e["trader"].lower() == e["wallet"]
            swaps.setdefault(e["wallet"], []).append(e)
    assert {w: len(swaps[w]) for w in wallets["informed"]} == dict.fromkeys(wallets["informed"], 10)
    assert {w: len(swaps[w]) for w in wallets["noise"]} == dict.fromkeys(wallets["noise"], 8)
    assert {e["purpose"] for w in wallets["informed"] for e in swaps[w]} == {"informed"}
    assert f"simulate-chain: {STEPS} steps" in wallets_run.stderr
    assert f"wallets: 3 informed, {NOISE} noise, 2 whales (8 exchange moves)" in wallets_run.stderr


def test_informed_trades_precede_the_move_and_noise_trades_do_not(wallets_run: Run) -> None:
    times, prices = _reference(wallets_run.trades)
    events = wallets_run.truth["events"]
    informed = [e for e in events if e["purpose"] == "informed"]
    noise = [e for e in events if e["purpose"] == "noise"]
    for wallet in wallets_run.truth["wallets"]["informed"]:
        hits = [_hit(e, times, prices) for e in informed if e["wallet"] == wallet]
        assert sum(hits) >= 0.7 * len(hits), (wallet, hits)
    noise_rate = sum(_hit(e, times, prices) for e in noise) / len(noise)
    assert noise_rate < 0.8  # random sides: about half; an informed-like noise wallet would be a bug


def test_event_time_runs_in_steps_of_the_block_seconds_and_ends_in_the_past(wallets_run: Run) -> None:
    w3, truth = wallets_run.world.w3, wallets_run.truth
    steps = [int(p["timestamp"]) for p in truth["prices"]]
    assert len(steps) == STEPS
    assert {b - a for a, b in itertools.pairwise(steps)} == {BLOCK_SECONDS}
    assert steps[-1] <= wallets_run.began  # the whole run lies before it was started: no future blocks
    assert steps[-1] - steps[0] == (STEPS - 1) * BLOCK_SECONDS  # hours of block time in a minute or two
    for entry in truth["events"][-40:]:
        block = w3.eth.get_block(entry["block_number"])
        assert block["timestamp"] == entry["block_timestamp"]
    planted = [e for e in truth["events"] if e["purpose"] in ("informed", "noise")]
    for entry in planted:  # each in its step's slot: P(t) is that step's reference price
        i = bisect.bisect_right(steps, entry["block_timestamp"]) - 1
        assert 0 <= entry["block_timestamp"] - steps[i] < BLOCK_SECONDS
    # The pools followed the path in event time: the truth's targets are the reference trades' prices.
    times, prices = _reference(wallets_run.trades)
    assert times == steps
    assert prices == [Decimal(p["target"]) for p in truth["prices"]]


def test_whale_moves_landed_at_the_exchange_addresses(wallets_run: Run) -> None:
    w3, truth, d = wallets_run.world.w3, wallets_run.truth, wallets_run.world.deployment
    whales = {w["address"]: w for w in truth["wallets"]["whales"]}
    exchanges = {e["address"]: e["label"] for e in truth["wallets"]["exchanges"]}
    moves = [e for e in truth["events"] if e["purpose"] in ("whale_to_exchange", "whale_from_exchange")]
    assert len(moves) == 8
    assert {m["wallet"] for m in moves} == set(whales)
    for m in moves:
        assert m["kind"] == "transfer"
        outflow = m["purpose"] == "whale_from_exchange"
        assert m["direction"] == ("from_exchange" if outflow else "to_exchange")
        sender, receiver = (m["exchange"], m["wallet"]) if outflow else (m["wallet"], m["exchange"])
        assert (m["from_address"].lower(), m["to_address"].lower()) == (sender, receiver)
        assert (m["label"], m["entity_type"]) == (
            whales[m["wallet"]]["label"],
            whales[m["wallet"]]["entity_type"],
        )
        assert m["exchange_label"] == exchanges[m["exchange"]]
        assert Decimal(m["usd_value"]) == Decimal(m["amount"]) >= 100_000
        # The exchange address's balance changed by exactly the planted amount in that block.
        erc20 = contract(w3, "TestToken", m["token"])
        holder = Web3.to_checksum_address(m["exchange"])
        block = m["block_number"]
        delta = erc20.functions.balanceOf(holder).call(block_identifier=block) - erc20.functions.balanceOf(
            holder
        ).call(block_identifier=block - 1)
        assert delta == (-1 if outflow else 1) * int(m["amount_raw"]), m
        assert w3.eth.get_transaction_receipt(m["tx_hash"])["status"] == 1
        assert d.token_at(m["token"]).symbol in ("USDC", "DAI")
    # Each whale's first move brings it its funds from an exchange; they alternate from there.
    for whale in whales:
        directions = [m["direction"] for m in moves if m["wallet"] == whale]
        assert directions == ["from_exchange", "to_exchange"] * 2


def test_the_label_csv_and_the_reference_trades_are_well_formed(wallets_run: Run) -> None:
    with wallets_run.labels.open(newline="") as f:
        assert f.readline().strip() == "address,blockchain,label,entity_type,source"
        f.seek(0)
        rows = list(csv.DictReader(f))
    whales = wallets_run.truth["wallets"]["whales"]
    by_address = {r["address"]: r for r in rows}
    for whale in whales:
        row = by_address[whale["address"]]
        assert (row["blockchain"], row["label"], row["entity_type"]) == (
            "ethereum",
            whale["label"],
            whale["entity_type"],
        )
        assert row["source"].startswith("coattail simulate-chain")
    assert {r["entity_type"] for r in rows} <= {"whale", "fund", "exchange"}
    assert all(ADDRESS.match(r["address"]) for r in rows)
    lines = wallets_run.trades.read_bytes().splitlines()
    assert len(lines) == STEPS
    trades = [loads_trade(line) for line in lines]
    assert {(t.exchange, t.symbol) for t in trades} == {("binance", "ETH-USDT")}
    assert len({t.event_id for t in trades}) == STEPS
    assert all(t.quote_volume == t.price * t.quantity for t in trades)


def test_a_path_without_moves_is_refused_in_one_line(chain_world: ChainWorld, tmp_path: Path) -> None:
    record = tmp_path / "deployment.json"
    record.write_text(chain_world.deployment.to_json())
    argv = [
        sys.executable, "-m", "coattail", "simulate-chain", "--rpc-url", chain_world.node.url,
        "--wallets", "--steps", "90", "--eth-price", "3000", "--deployment", str(record),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: the price path moves more than 0.4%"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_raw_blocks_normalise_offline_to_every_planted_event(wallets_run: Run) -> None:
    """`coattail normalize --source ethereum` on --raw-out, valued from --cex-trades-out: the lead's path."""
    out = wallets_run.out
    argv = [
        sys.executable, "-m", "coattail", "normalize", "--source", "ethereum", "--tokens",
        str(out / "tokens.yaml"), "--prices", str(out / "cex.jsonl"), "--dead-letter", str(out / "dlq.jsonl"),
    ]  # fmt: skip
    with (out / "raw.jsonl").open("rb") as raw:
        done = subprocess.run(argv, stdin=raw, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert b" 0 dead-lettered" in done.stderr, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    by_tx: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_tx.setdefault(event["tx_hash"], []).append(event)
    planted = [e for e in wallets_run.truth["events"] if e["purpose"] != "seed_pool"]
    assert all(e["tx_hash"] in by_tx for e in planted)
    for move in (e for e in planted if e["purpose"] in ("whale_to_exchange", "whale_from_exchange")):
        (transfer,) = (e for e in by_tx[move["tx_hash"]] if e["event_type"] == "transfer")
        assert transfer["from_address"].lower() == move["from_address"].lower()
        assert transfer["to_address"].lower() == move["to_address"].lower()
        assert Decimal(transfer["usd_value"]) == Decimal(move["usd_value"])
    informed = [e for e in planted if e["purpose"] == "informed"]
    for trade in informed:  # valued at the step's reference price (the WETH side) or the stablecoin side
        (swap,) = (e for e in by_tx[trade["tx_hash"]] if e["event_type"] == "swap")
        assert swap["usd_value"] is not None


# --- The whole offline path on this chain: normalize -> coattail detect (MOD-004, MOD-005) -------------


@dataclass(frozen=True)
class Detected:
    scores: list[dict[str, Any]]  # wallet_scores rows
    alerts: list[dict[str, Any]]
    labels: list[dict[str, Any]]  # labeled_wallets rows


@pytest.fixture(scope="module")
def detected(wallets_run: Run) -> Detected:
    """The chain's raw blocks normalised offline, then `coattail detect --tier medium --tables` on them
    with the simulator's whale labels as the operator's label file (a subprocess, as a user runs it)."""
    out = wallets_run.out
    normalize = [
        sys.executable, "-m", "coattail", "normalize", "--source", "ethereum", "--tokens",
        str(out / "tokens.yaml"), "--prices", str(out / "cex.jsonl"),
    ]  # fmt: skip
    with (out / "raw.jsonl").open("rb") as raw, (out / "events.jsonl").open("wb") as events:
        done = subprocess.run(normalize, stdin=raw, stdout=events, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 0, done.stderr
    env = {
        **os.environ,
        "COATTAIL_MODULES__MOD_005__PARAMS__LABEL_FILES": json.dumps([str(wallets_run.labels)]),
        "COATTAIL_MODULES__MOD_004__PARAMS__HORIZON_MINUTES": str(HORIZON_MINUTES),
    }
    detect = [
        sys.executable, "-m", "coattail", "detect", "--tier", "medium", "--input", str(out / "cex.jsonl"),
        "--onchain", str(out / "events.jsonl"), "--tables", str(out / "tables"), "--output",
        str(out / "alerts.jsonl"),
    ]  # fmt: skip
    done = subprocess.run(detect, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    def rows(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    return Detected(
        rows(out / "tables" / "wallet_scores.jsonl"),
        rows(out / "alerts.jsonl"),
        rows(out / "tables" / "labeled_wallets.jsonl"),
    )


def test_the_scorer_ranks_every_informed_wallet_top_5_percent_and_no_noise_wallet_top_1(
    wallets_run: Run, detected: Detected
) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(detected.scores, key=lambda r: r["scored_at"]):
        latest[row["wallet"].lower()] = row  # each wallet's last scoring of the run
    planted = wallets_run.truth["wallets"]
    informed, noise = set(planted["informed"]), set(planted["noise"])
    scored = set(latest)
    assert informed <= scored, f"informed wallets not scored: {sorted(informed - scored)}"
    assert len(noise & scored) >= 0.9 * len(noise)  # (≥ 5 trades with an elapsed horizon each)
    percentile = {w: float(r["alpha_percentile"]) for w, r in latest.items()}
    assert all(percentile[w] >= 95 for w in informed), {w: percentile[w] for w in informed}
    assert not [w for w in noise & scored if percentile[w] >= 99], "a noise wallet in the top 1 %"
    assert all(r["trade_count"] >= 5 for r in latest.values())


def test_every_planted_whale_move_gives_one_known_whale_activity_with_its_direction(
    wallets_run: Run, detected: Detected
) -> None:
    moves = [
        e for e in wallets_run.truth["events"] if e["purpose"] in ("whale_to_exchange", "whale_from_exchange")
    ]
    assert moves
    whale_alerts = [a for a in detected.alerts if a["alert_type"] == "known_whale_activity"]
    by_tx: dict[str, list[dict[str, Any]]] = {}
    for alert in whale_alerts:
        by_tx.setdefault(alert["details"]["tx_hash"].lower(), []).append(alert)
    for move in moves:
        (alert,) = by_tx.pop(move["tx_hash"].lower())  # exactly one per move
        details = alert["details"]
        assert details["wallet"].lower() == move["wallet"].lower()
        assert details["direction"] == move["direction"]
        assert details["entity_type"] == move["entity_type"]
        assert Decimal(details["usd_value"]) == Decimal(move["usd_value"])
        assert alert["severity"] == ("high" if Decimal(move["usd_value"]) >= 1_000_000 else "medium")
    assert by_tx == {}, "known_whale_activity for something the simulator did not plant"
    # The operator's file reached the labeled_wallets rows beside the shipped dataset.
    whales = {w["address"].lower() for w in wallets_run.truth["wallets"]["whales"]}
    assert whales <= {r["address"] for r in detected.labels}
