"""Session fixtures shared by every test tier.

Real servers, never mocks of our own code: ``kafka_bootstrap`` and ``dynamodb_endpoint`` come from
KAFKA_BOOTSTRAP_SERVERS / DYNAMODB_ENDPOINT when set, otherwise the suite starts its own broker and
DynamoDB Local with the same code as `coattail dev up`, in a state folder of the suite's own, and
stops them at the end of the session (or at the start of the next, after a killed run).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coattail.devservices import DevServices
from tests.sessionstate import session_state

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _dev_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServices | None]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DYNAMODB_ENDPOINT"):
        yield None
        return
    state = session_state("dev-services", tmp_path_factory)
    if state.fixed:
        DevServices(state.path).down(wipe=True)  # what a killed run left running, and its data
    services = DevServices(state.path, in_memory_dynamodb=True)
    services.up()
    try:
        yield services
    finally:
        services.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(_dev_services: DevServices | None) -> str:
    """Bootstrap servers of a real Kafka broker (KRaft, loopback)."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or (
        _dev_services.endpoints()["kafka"] if _dev_services else ""
    )


@pytest.fixture(scope="session")
def dynamodb_endpoint(_dev_services: DevServices | None) -> str:
    """Endpoint URL of a real DynamoDB Local."""
    return os.environ.get("DYNAMODB_ENDPOINT") or (
        _dev_services.endpoints()["dynamodb"] if _dev_services else ""
    )


@pytest.fixture
def unique_name() -> str:
    """A fresh name for topics/tables so tests never share state."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def aws_local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials for local AWS endpoints (DynamoDB Local, moto) so boto3 never looks further."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
