"""anvil (Foundry's local Ethereum node, from the npm package set-up installs) on loopback.

``coattail dev up`` runs it as a background service when the tier has the ``ethereum`` connector;
tests and the chain simulator start their own throw-away node with :class:`AnvilNode`. Its accounts
come from anvil's well-known test mnemonic, unlocked, each funded with ``balance_eth`` ether. By
default a block is mined per transaction (instant mining); ``block_time`` mines on a timer instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from coattail.devservices.jars import MissingDependencyError
from coattail.devservices.process import alive, free_port, log_tail
from coattail.errors import CoattailError
from coattail.settings.paths import REPO_ROOT

HOST = "127.0.0.1"
CHAIN_ID = 31337  # anvil's default: the id every local tool expects
ACCOUNTS = 10
BALANCE_ETH = 10_000_000  # enough for the simulator's liquidity and whale transfers
_PACKAGE_BIN = Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


class AnvilError(CoattailError, RuntimeError):
    """A throw-away anvil did not come up; the message ends with its log tail."""


def chain_cache_dir() -> Path:
    """Where scripts/setup.d/60-chain.sh put node_modules/ and artifacts/ (COATTAIL_CHAIN_DIR overrides)."""
    explicit = os.environ.get("COATTAIL_CHAIN_DIR")
    return Path(explicit).expanduser() if explicit else REPO_ROOT / ".cache" / "chain"


def binary() -> Path:
    """The anvil executable: ``COATTAIL_ANVIL`` if set, else the one set-up installed."""
    explicit = os.environ.get("COATTAIL_ANVIL")
    path = Path(explicit).expanduser() if explicit else chain_cache_dir() / _PACKAGE_BIN
    if not path.is_file() or not os.access(path, os.X_OK):
        raise MissingDependencyError(
            f"no anvil at {path}; run `bash scripts/setup.d/60-chain.sh` (or `make setup`) first"
        )
    return path


def server_argv(
    port: int,
    *,
    host: str = HOST,
    block_time: float | None = None,
    chain_id: int = CHAIN_ID,
    accounts: int = ACCOUNTS,
    balance_eth: int = BALANCE_ETH,
    state_file: Path | None = None,
) -> list[str]:
    argv = [
        str(binary()),
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--accounts",
        str(accounts),
        "--balance",
        str(balance_eth),
    ]
    if block_time is not None:
        if block_time <= 0:
            raise ValueError(f"block_time must be positive seconds, got {block_time}")
        argv += ["--block-time", f"{block_time:g}"]
    if state_file is not None:
        # Loads the chain from the file on start and writes it back on exit: `dev up` keeps its world.
        argv += ["--state", str(state_file)]
    return argv


def rpc_url(port: int, host: str = HOST) -> str:
    return f"http://{host}:{port}"


def ws_url(http_url: str) -> str:
    """anvil serves WebSocket JSON-RPC on the same port as HTTP."""
    return "ws" + http_url[len("http") :] if http_url.startswith("http") else http_url


def chain_id(url: str, timeout: float = 2.0) -> int | None:
    """The node's ``eth_chainId``, or None when nothing answers JSON-RPC at ``url``."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    if not url.startswith(("http://", "https://")):
        return None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own URL
            reply = json.loads(response.read())
        return int(reply["result"], 16)
    except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError):
        return None


def answers(url: str, timeout: float = 2.0) -> bool:
    return chain_id(url, timeout) is not None


class AnvilNode:
    """A throw-away anvil on a free loopback port, stopped (process and all) on exit.

    >>> with AnvilNode(log_path) as node:  # doctest: +SKIP
    ...     Web3(HTTPProvider(node.url)).eth.block_number
    """

    def __init__(
        self,
        log_path: Path,
        *,
        block_time: float | None = None,
        accounts: int = ACCOUNTS,
        start_timeout: float = 30.0,
    ):
        self.log_path = log_path
        self.block_time = block_time
        self.accounts = accounts
        self.start_timeout = start_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return rpc_url(self.port)

    @property
    def ws_url(self) -> str:
        return ws_url(self.url)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> AnvilNode:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The port is free when picked but may be taken before anvil binds it: try a few.
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    server_argv(self.port, block_time=self.block_time, accounts=self.accounts),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait():
                return self
        raise AnvilError(f"anvil did not start; log tail ({self.log_path}):\n{log_tail(self.log_path)}")

    def _wait(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if answers(self.url, timeout=1.0):
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def stop(self) -> None:
        if self._proc is None:
            return
        if alive(self._proc.pid):
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
