"""anvil as a `coattail dev` service: started for on-chain tiers, answering eth_chainId, keeping its chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from coattail.devcli import needs_chain
from coattail.devservices import DevServices, anvil
from coattail.devservices.jars import MissingDependencyError

pytestmark = pytest.mark.services


def test_only_tiers_with_the_ethereum_connector_need_the_chain() -> None:
    assert needs_chain("large")
    assert needs_chain("medium")  # the wallet modules read on-chain events
    assert not needs_chain("small")


def test_argv_and_a_missing_binary_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COATTAIL_ANVIL", str(tmp_path / "nothing"))
    with pytest.raises(MissingDependencyError, match=r"60-chain\.sh"):
        anvil.binary()
    monkeypatch.delenv("COATTAIL_ANVIL")
    try:
        argv = anvil.server_argv(8545, block_time=1.5, state_file=tmp_path / "s.json")
    except MissingDependencyError:
        pytest.skip("the local chain tooling is not installed: run `bash scripts/setup.d/60-chain.sh`")
    assert argv[1:] == [
        "--host",
        "127.0.0.1",
        "--port",
        "8545",
        "--chain-id",
        "31337",
        "--accounts",
        "10",
        "--balance",
        "10000000",
        "--block-time",
        "1.5",
        "--state",
        str(tmp_path / "s.json"),
    ]
    with pytest.raises(ValueError, match="positive"):
        anvil.server_argv(8545, block_time=0)
    assert anvil.ws_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert anvil.chain_id("http://127.0.0.1:9") is None


def test_dev_up_with_the_chain_starts_anvil_and_keeps_its_chain(tmp_path: Path) -> None:
    from web3 import HTTPProvider, Web3

    try:
        anvil.binary()
    except MissingDependencyError as exc:
        pytest.skip(f"the local chain tooling is not installed: {exc}")
    services = DevServices(tmp_path, in_memory_dynamodb=True, start_timeout=60, chain=True)
    try:
        infos = services.up()
        assert set(infos) == {"kafka", "dynamodb", "anvil"}
        assert all(i.answering for i in infos.values())
        url = services.endpoints()["anvil"]
        assert anvil.chain_id(url) == anvil.CHAIN_ID
        w3 = Web3(HTTPProvider(url))
        sender, receiver = w3.eth.accounts[:2]
        tx = w3.eth.send_transaction({"from": sender, "to": receiver, "value": 12345})
        w3.eth.wait_for_transaction_receipt(tx)
        height = w3.eth.block_number
        # A `dev status` that was not asked for the chain still reports the running node.
        assert "anvil" in DevServices(tmp_path).status()
        assert "anvil" in services.down()
        assert not anvil.answers(url)
        again = services.up()["anvil"]
        assert again.answering
        assert again.address == url
        w3 = Web3(HTTPProvider(again.address))
        assert w3.eth.block_number == height
        assert w3.eth.get_transaction(tx)["value"] == 12345
    finally:
        services.down(wipe=True)
    assert not (tmp_path / "dev").exists()
