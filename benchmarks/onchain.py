"""On-chain hot path: the Ethereum normaliser vs bare ``eth_abi.decode`` of the same logs, in one run.

Run: .venv/bin/python benchmarks/onchain.py [--logs 20000]
The logs are the hand-checked mainnet-form fixture (tests/chains/fixtures/ethereum_mainnet.jsonl:
ERC-20 Transfers, Uniswap V2 Sync/Swap/Mint and a V3 Swap) repeated under fresh transaction hashes
and log indices. Three figures, each the best of interleaved rounds:

* bare: one ``eth_abi.decode`` per log of its indexed topics and data with the event's types (hex ->
  bytes included) — the floor any ABI decoder pays;
* decode: our :func:`connectors.ethereum.abi.decode_log` (validation, data and indexed topics,
  checksummed addresses);
* normalise: ``normalize_line`` end to end (registry look-ups, exact scaling, reserves and prices,
  the validated OnchainEvent with its UUIDv5 id).

Goal: normalise >= 0.25 x bare decode (building the validated OnchainEvent is most of the rest).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file sits beside a `connectors.py`: keep its folder from shadowing the `connectors` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import eth_abi
from eth_utils import keccak

from coattail.chains.tokens import load_registry
from coattail.chains.valuation import PriceBook
from connectors.ethereum import abi
from connectors.ethereum.normalize import EthereumNormalizer

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "chains" / "fixtures" / "ethereum_mainnet.jsonl"
PAIR = "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"


def best_rates(fns: list[Callable[[], int]], repeat: int = 5) -> list[float]:
    """Best items/s of each function over ``repeat`` interleaved rounds (a busy machine favours none)."""
    best = [0.0] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            started = time.perf_counter()
            n = fn()
            best[i] = max(best[i], n / (time.perf_counter() - started))
    return best


def make_logs(count: int) -> list[dict[str, Any]]:
    """``count`` decodable logs: the fixture's own (ours, not NFTs or unknown tokens), re-hashed per copy."""
    ours = []
    for line in FIXTURE.read_text().splitlines():
        obj = json.loads(line)
        decodable = "topics" in obj and obj["topics"][0] in abi.BY_TOPIC0 and len(obj["topics"]) < 4
        if decodable and obj["address"].lower() != "0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce":  # unknown
            ours.append(obj)
    logs = []
    copy = 0
    while len(logs) < count:
        for obj in ours:
            tx = "0x" + keccak(text=f"{obj['transactionHash']}{copy}").hex()
            logs.append(dict(obj, transactionHash=tx, logIndex=hex(int(obj["logIndex"], 16) + 64 * copy)))
        copy += 1
    return logs[:count]


def measure(logs: list[dict[str, Any]], lp_file: Path) -> list[float]:
    """Best logs/s of bare eth_abi.decode, abi.decode_log and normalize_line over the same logs."""
    # Every parameter, indexed ones first (a topic is one ABI word), as eth_abi's own types.
    types = {event.topic0: tuple(t for _, t in (*event.indexed, *event.data)) for event in abi.EVENTS}

    def bare() -> int:
        for log in logs:
            topics = log["topics"]
            words = b"".join([bytes.fromhex(t[2:]) for t in topics[1:]])
            eth_abi.decode(types[topics[0]], words + bytes.fromhex(log["data"][2:]))
        return len(logs)

    def decode() -> int:
        for log in logs:
            abi.decode_log(log)
        return len(logs)

    def normalise() -> int:
        norm = normalizer([lp_file])  # fresh each round: the Sync memory starts empty, as for a new file
        events = 0
        for log in logs:
            events += len(norm.normalize_line(log))
        return len(logs) if events else 0

    bare()  # warm-up: eth_abi builds and caches its decoders on first use
    return best_rates([bare, decode, normalise])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", type=int, default=20_000)
    args = parser.parse_args()
    logs = make_logs(args.logs)
    folder = Path(tempfile.mkdtemp(prefix="bench-onchain-"))
    try:
        lp_file = folder / "lp.yaml"  # the pair's own LP token, so its Transfers are normalised too
        lp_file.write_text(f'tokens:\n  "{PAIR}": {{symbol: UNI-V2, decimals: 18}}\n')
        base, ours, full = measure(logs, lp_file)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    kinds = {abi.BY_TOPIC0[log["topics"][0]].kind for log in logs}
    print(f"{len(logs):,} mainnet-form logs ({', '.join(sorted(kinds))})")
    print(f"  bare eth_abi.decode(topics + data) {base:>12,.0f} logs/s")
    print(f"  abi.decode_log (data + topics)     {ours:>12,.0f} logs/s   ratio {ours / base:.2f}")
    print(f"  normalize_line -> OnchainEvent     {full:>12,.0f} logs/s   ratio {full / base:.2f}")


def normalizer(token_files: list[Path] | None = None, book: PriceBook | None = None) -> EthereumNormalizer:
    """The offline normaliser: the shipped token registry plus ``token_files``."""
    return EthereumNormalizer(load_registry("ethereum", token_files or []), book)


if __name__ == "__main__":
    main()
