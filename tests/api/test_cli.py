"""`coattail api` as a newcomer runs it: no flags, the DynamoDB Local that `coattail dev up` recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import free_socket, local_store

pytestmark = pytest.mark.services
COATTAIL = str(Path(sys.executable).parent / "coattail")


def clean_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COATTAIL_") and k != "DYNAMODB_ENDPOINT"}
    return {**env, "COATTAIL_STATE_DIR": str(state_dir)}


def test_serves_the_recorded_dynamodb_and_prints_its_urls(
    dynamodb_endpoint: str, unique_name: str, tmp_path: Path
) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "services.json").write_text(json.dumps({"dynamodb": dynamodb_endpoint}))
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**clean_env(tmp_path), "COATTAIL_HOT_STORE__TABLE": unique_name}
    proc = subprocess.Popen(
        [COATTAIL, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith(f"alert API:  http://127.0.0.1:{port}/alerts"), lines
        assert lines[1].startswith(f"dashboard:  http://127.0.0.1:{port}/"), lines
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "coattail api did not become ready"
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)  # polling for the port to open, not waiting for an effect
            assert client.get("/alerts").json()["items"] == []
    finally:
        proc.terminate()
        proc.wait(30)
    # The table was created on start (embedded profile, create_if_missing).
    local_store(dynamodb_endpoint, unique_name).client.delete_table(TableName=unique_name)


def test_without_dynamodb_it_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [COATTAIL, "api"], env=clean_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "coattail dev up" in result.stderr
