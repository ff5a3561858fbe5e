"""The run's blocks as raw JSON-RPC objects, for ``coattail normalize --source ethereum`` offline.

Per block: the block with its full transactions (their ETH value transfers), then its logs
(``eth_getLogs``, with ``blockTimestamp``) in log order, the order the offline normaliser needs (a
transaction before its logs, a Sync before its Swap). Anvil's own JSON, untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from web3 import Web3
from web3.types import RPCEndpoint

from connectors.chainsim.deploy import ChainSimError

LOG_CHUNK_BLOCKS = 2_000  # blocks per eth_getLogs request


def write_blocks(w3: Web3, first: int, last: int, path: Path) -> int:
    """Blocks ``first``..``last`` and their logs to ``path``; the number of lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = 0
    with path.open("wb") as out:
        for low in range(first, last + 1, LOG_CHUNK_BLOCKS):
            high = min(low + LOG_CHUNK_BLOCKS - 1, last)
            logs: dict[int, list[Any]] = {}
            for log in _rpc(w3, "eth_getLogs", {"fromBlock": hex(low), "toBlock": hex(high)}):
                logs.setdefault(int(log["blockNumber"], 16), []).append(log)
            for number in range(low, high + 1):
                block = _rpc(w3, "eth_getBlockByNumber", hex(number), True)
                out.write(orjson.dumps(block) + b"\n")
                for log in sorted(logs.get(number, []), key=lambda item: int(item["logIndex"], 16)):
                    out.write(orjson.dumps(log) + b"\n")
                lines += 1 + len(logs.get(number, []))
    return lines


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), list(params))
    if "error" in reply:
        raise ChainSimError(f"{method} failed: {str(reply['error'])[:200]}")
    return reply["result"]
