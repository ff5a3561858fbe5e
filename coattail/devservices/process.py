"""Background processes with pid files and logs, and the small helpers around them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A loopback port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def spawn(argv: list[str], log_path: Path, pid_path: Path, env: dict[str, str] | None = None) -> int:
    # Runs in the log's folder: DynamoDB Local drops a metadata file into its working directory.
    """Start ``argv`` detached in its own session, output appended to ``log_path``; returns its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            start_new_session=True,  # its own process group: `down` kills the JVM and any children
            env={**os.environ, **(env or {})},
        )
    pid_path.write_text(f"{proc.pid} {_start_time(proc.pid) or ''}".strip())
    return proc.pid


def read_pid(pid_path: Path) -> int | None:
    """The pid in ``pid_path`` if that process still runs: not when the pid has since been reused by
    another process (its start time differs from the one recorded), as after a reboot."""
    try:
        fields = pid_path.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if not alive(pid):
        return None
    recorded = fields[1] if len(fields) > 1 else None
    current = _start_time(pid)
    if recorded and current and recorded != current:
        return None
    return pid


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) is in parentheses and may hold spaces.
    after_name = stat.rsplit(")", 1)[-1].split()
    return after_name[19] if len(after_name) > 19 else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop(pid: int, grace_seconds: float = 15.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.1)


def log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        content = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(content[-lines:])
