"""Block time under the simulator's control, so hours of event time pass in a minute or two.

anvil's ``evm_setTime`` moves the node's clock (backwards too: the run is placed in the recent past,
so its blocks are not "from the future" for the pipeline's quality checks when it is done),
``evm_setNextBlockTimestamp`` pins the first block of a step to the step's time and a block
timestamp interval of one second spaces the step's other blocks. :meth:`EventClock.release` hands
the node back to the wall clock (no later block older than the run's last one).
"""

from __future__ import annotations

import time
from typing import Any

from web3 import Web3

from connectors.chainsim.deploy import ChainSimError


class EventClock:
    def __init__(self, w3: Web3):
        self.w3 = w3
        self.started = False

    def start(self, epoch_s: int) -> None:
        """Move the node's clock to ``epoch_s``; blocks from now on advance one second each."""
        if self.started:
            return
        self._rpc("evm_setTime", epoch_s)
        self._rpc("anvil_setBlockTimestampInterval", 1)
        self.started = True

    def next_block_at(self, epoch_s: int) -> int:
        """The next block at ``epoch_s`` (one second after the latest block if that is later)."""
        latest = int(self.w3.eth.get_block("latest")["timestamp"])
        at = max(epoch_s, latest + 1)
        self._rpc("evm_setNextBlockTimestamp", at)
        return at

    def release(self) -> None:
        if not self.started:
            return
        self._rpc("anvil_removeBlockTimestampInterval")
        latest = int(self.w3.eth.get_block("latest")["timestamp"])
        self._rpc("evm_setTime", max(int(time.time()), latest + 1))
        self.started = False

    def _rpc(self, method: str, *params: Any) -> Any:
        reply = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in reply:
            message = str(reply["error"].get("message", reply["error"]))[:200]
            raise ChainSimError(f"the node refused {method} (is it anvil?): {message}")
        return reply.get("result")
