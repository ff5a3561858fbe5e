"""Session fixtures for tests against a real local chain: an anvil node and the deployed DeFi world.

``anvil_node`` is a throw-away anvil (the one set-up installed) on a free loopback port, instant
mining; ``chain_world`` deploys Uniswap V2 (factory, WETH9, Router02), the 6-decimal USDC and the
18-decimal DAI on it and seeds the USDC/WETH and DAI/WETH pools at 3000 USD/ETH, once per session.
Tests that change the chain and must not leak into others wrap themselves in ``chain_snapshot``
(anvil's evm_snapshot / evm_revert). Test files outside tests/chains import the fixtures by name:
``from tests.chains.conftest import anvil_node, chain_world, chain_snapshot  # noqa: F401``.
Without `bash scripts/setup.d/60-chain.sh` having run, these tests skip and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from coattail.devservices import anvil
from coattail.devservices.jars import MissingDependencyError

if TYPE_CHECKING:
    from web3 import Web3

    from connectors.chainsim.deploy import Deployment


def _setup_missing() -> str | None:
    from connectors.chainsim import artifacts

    try:
        anvil.binary()
    except MissingDependencyError as exc:
        return str(exc)
    if not artifacts.available():
        return "no contract artifacts in .cache/chain; run `bash scripts/setup.d/60-chain.sh` first"
    return None


@dataclass(frozen=True)
class ChainWorld:
    """A web3 client on the session's anvil and what was deployed there."""

    w3: Web3
    deployment: Deployment
    node: anvil.AnvilNode
    seed_events: tuple[dict[str, object], ...]  # the truth entries of the pools' seeding


@pytest.fixture(scope="session")
def anvil_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[anvil.AnvilNode]:
    """A real anvil node (instant mining, chain id 31337, 10 funded unlocked accounts)."""
    missing = _setup_missing()
    if missing:
        pytest.skip(f"the local chain tooling is not installed: {missing}")
    node = anvil.AnvilNode(tmp_path_factory.mktemp("anvil") / "anvil.log").start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def chain_world(anvil_node: anvil.AnvilNode) -> ChainWorld:
    """The simulator's world deployed once on ``anvil_node``."""
    from web3 import HTTPProvider, Web3

    from connectors.chainsim.deploy import deploy
    from connectors.chainsim.truth import TruthLog

    w3 = Web3(HTTPProvider(anvil_node.url))
    truth = TruthLog(w3)
    deployment = deploy(w3, truth=truth)
    return ChainWorld(w3, deployment, anvil_node, tuple(truth.events))


@pytest.fixture
def chain_snapshot(chain_world: ChainWorld) -> Iterator[ChainWorld]:
    """``chain_world``, reverted to its state before the test when the test ends."""
    w3 = chain_world.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield chain_world
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
