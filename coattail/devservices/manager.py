"""Start, check and stop the local services; the same code backs `coattail dev` and the pytest fixtures."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from coattail.devservices import anvil, dynamodb, kafka
from coattail.devservices.process import alive, free_port, log_tail, port_open, read_pid, spawn, stop
from coattail.errors import CoattailError

SERVICES = ("kafka", "dynamodb")
# Started only when asked for (a tier with the ethereum connector); always stopped by `down`.
OPTIONAL_SERVICES = ("anvil",)
ALL_SERVICES = SERVICES + OPTIONAL_SERVICES
_ANSWERS: dict[str, Callable[[str], bool]] = {
    "kafka": kafka.answers,
    "dynamodb": dynamodb.answers,
    "anvil": anvil.answers,
}


class ServiceError(CoattailError, RuntimeError):
    """A local service did not come up; the message says which, why, and ends with its log tail."""


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    address: str  # bootstrap servers for Kafka, endpoint URL for DynamoDB, JSON-RPC URL for anvil
    pid: int | None
    answering: bool
    log: str


class DevServices:
    """Services under ``<state>/dev/<name>/`` with a pid file, a log and (Kafka, anvil) their data.

    ``chain=True`` adds the anvil Ethereum node (instant mining, or one block per ``block_time``
    seconds); its chain is kept in ``anvil/state.json`` across restarts until ``down(wipe=True)``.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        in_memory_dynamodb: bool = False,
        start_timeout: float = 120,
        cluster_id_source: kafka.ClusterIdSource = kafka.new_cluster_id,
        chain: bool = False,
        block_time: float | None = None,
    ):
        self.root = state_dir / "dev"
        self.services = SERVICES + (("anvil",) if chain else ())
        self.block_time = block_time
        self.in_memory_dynamodb = in_memory_dynamodb
        self.start_timeout = start_timeout
        self.cluster_id_source = cluster_id_source  # only used the first time the storage is formatted

    # -- public API -----------------------------------------------------------------------------
    def up(self) -> dict[str, ServiceInfo]:
        """Start what is not running (reusing what is), wait until each answers, record the endpoints."""
        self.root.mkdir(parents=True, exist_ok=True)
        recorded = self._read_endpoints()
        started: dict[str, int] = {}
        addresses: dict[str, str] = {}
        for name in self.services:
            info = self._info(name, recorded)
            if info.pid and info.answering:
                addresses[name] = info.address
                continue
            if info.pid:  # running but not answering: restart it cleanly
                stop(info.pid)
            addresses[name], started[name] = getattr(self, f"_start_{name}")(recorded.get(name))
        self._write_endpoints(addresses)
        for name, pid in started.items():
            self._wait(name, pid, addresses[name])
        return self.status()

    def down(self, wipe: bool = False) -> list[str]:
        """Stop every service; with ``wipe`` also delete their data. Returns the names stopped."""
        stopped = []
        for name in ALL_SERVICES:
            pid = read_pid(self._pid_path(name))
            if pid:
                stop(pid)
                stopped.append(name)
            with contextlib.suppress(FileNotFoundError):
                self._pid_path(name).unlink()
        if wipe and self.root.exists():
            shutil.rmtree(self.root)
        return stopped

    def status(self) -> dict[str, ServiceInfo]:
        recorded = self._read_endpoints()
        # An optional service an earlier `up` started is reported while it runs, whoever asks.
        names = [n for n in ALL_SERVICES if n in self.services or read_pid(self._pid_path(n))]
        return {name: self._info(name, recorded) for name in names}

    def endpoints(self) -> dict[str, str]:
        """Addresses recorded by the last ``up`` (even if the processes have gone since)."""
        return self._read_endpoints()

    # -- starting -------------------------------------------------------------------------------
    def _start_kafka(self, previous: str | None) -> tuple[str, int]:
        home = self.root / "kafka"
        home.mkdir(parents=True, exist_ok=True)
        port = _reusable_port(previous)
        ports = kafka.write_config(home, port=port)
        log = home / "kafka.log"
        cid = kafka.cluster_id(home, self.cluster_id_source)
        if kafka.needs_format(home):  # first start only: later starts reuse the data (and its id)
            fmt = subprocess.run(
                kafka.format_argv(home, cid), capture_output=True, text=True, timeout=120, check=False
            )
            if fmt.returncode != 0:
                log.write_text(fmt.stdout + fmt.stderr)
                raise ServiceError(
                    f"kafka: formatting the KRaft storage failed (exit {fmt.returncode}); "
                    f"log tail:\n{log_tail(log)}"
                )
        bootstrap = f"127.0.0.1:{ports['port']}"
        return bootstrap, spawn(kafka.server_argv(home), log, self._pid_path("kafka"))

    def _start_dynamodb(self, previous: str | None) -> tuple[str, int]:
        home = self.root / "dynamodb"
        home.mkdir(parents=True, exist_ok=True)
        port = _reusable_port(previous) or free_port()
        argv = dynamodb.server_argv(home, port, in_memory=self.in_memory_dynamodb)
        pid = spawn(argv, home / "dynamodb.log", self._pid_path("dynamodb"))
        return f"http://127.0.0.1:{port}", pid

    def _start_anvil(self, previous: str | None) -> tuple[str, int]:
        home = self.root / "anvil"
        home.mkdir(parents=True, exist_ok=True)
        port = _reusable_port(previous) or free_port()
        argv = anvil.server_argv(port, block_time=self.block_time, state_file=home / "state.json")
        return anvil.rpc_url(port), spawn(argv, home / "anvil.log", self._pid_path("anvil"))

    def _wait(self, name: str, pid: int, address: str) -> None:
        check = _ANSWERS[name]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                raise ServiceError(
                    f"{name} exited while starting; log tail ({self._log_path(name)}):\n"
                    f"{log_tail(self._log_path(name))}"
                )
            if check(address):
                return
            time.sleep(0.5)
        raise ServiceError(
            f"{name} did not answer at {address} within {self.start_timeout:.0f}s; "
            f"log tail ({self._log_path(name)}):\n{log_tail(self._log_path(name))}"
        )

    # -- bookkeeping ------------------------------------------------------------------------------
    def _info(self, name: str, recorded: dict[str, str]) -> ServiceInfo:
        pid = read_pid(self._pid_path(name))
        address = recorded.get(name, "")
        answering = bool(pid and address) and _ANSWERS[name](address)
        return ServiceInfo(name, address, pid, answering, str(self._log_path(name)))

    def _pid_path(self, name: str) -> Path:
        return self.root / name / f"{name}.pid"

    def _log_path(self, name: str) -> Path:
        return self.root / name / f"{name}.log"

    @property
    def endpoints_file(self) -> Path:
        return self.root / "services.json"

    def _read_endpoints(self) -> dict[str, str]:
        try:
            data = json.loads(self.endpoints_file.read_text())
        except (OSError, ValueError):
            return {}
        return {k: str(v) for k, v in data.items() if k in ALL_SERVICES}

    def _write_endpoints(self, addresses: dict[str, str]) -> None:
        # Keep what an earlier `up` recorded for services this one was not asked for (anvil).
        merged = {**self._read_endpoints(), **addresses}
        self.endpoints_file.parent.mkdir(parents=True, exist_ok=True)
        self.endpoints_file.write_text(json.dumps(merged, indent=2) + "\n")

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {name: asdict(info) for name, info in self.status().items()}


def _reusable_port(previous: str | None) -> int | None:
    """Keep the port of the last run when it is still free, so clients' saved endpoints stay valid."""
    if not previous:
        return None
    try:
        port = int(previous.rsplit(":", 1)[1].strip("/"))
    except (IndexError, ValueError):
        return None
    return None if port_open(port) else port
