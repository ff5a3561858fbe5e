"""The ``connectors:`` section is a union discriminated by ``type``: each exchange (or chain) module's
own settings model validates its entry, and a bad entry is one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coattail.settings import ConfigError, load_settings
from coattail.settings.connectors import UncheckedConnectorSettings
from connectors.binance import BinanceSettings
from connectors.bybit import BybitSettings
from connectors.coinbase import CoinbaseSettings
from connectors.ethereum.settings import EthereumSettings
from connectors.kraken import KrakenSettings
from connectors.okx import OkxSettings
from connectors.registry import CHAINS, EXCHANGES, SETTINGS_MODELS
from connectors.solana.settings import SolanaSettings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_each_entry_gets_its_own_model_and_the_union_comes_from_the_registry() -> None:
    settings = load_settings("large")
    kinds = {name: type(entry) for name, entry in settings.connectors.items()}
    assert kinds == {
        "binance": BinanceSettings,
        "coinbase": CoinbaseSettings,
        "okx": OkxSettings,
        "kraken": KrakenSettings,
        "bybit": BybitSettings,
        "ethereum": EthereumSettings,
        "solana": SolanaSettings,
    }
    assert set(SETTINGS_MODELS) == {*EXCHANGES, *CHAINS}
    assert settings.connectors["binance"].max_streams_per_connection == 1024  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"connectors.binance.type": "bitfinexx"},
            "config error: connectors.binance.type: 'bitfinexx' is unknown; one of binance, bybit, coinbase,"
            " ethereum, kraken, okx, solana"
            " (from override connectors.binance.type)",
        ),
        (
            {"connectors.coinbase.streams": ["trade"]},  # a Binance setting: not Coinbase's
            "config error: connectors.coinbase.streams: unknown setting"
            " (from override connectors.coinbase.streams)",
        ),
        (
            {"connectors.binance.max_streams_per_connection": 2000},
            "config error: connectors.binance.max_streams_per_connection: Input should be less than or equal"
            " to 1024 (from override connectors.binance.max_streams_per_connection)",
        ),
        (
            {"connectors.ethereum.streams": ["trade"]},  # a Binance setting: not a chain's
            "config error: connectors.ethereum.streams: unknown setting"
            " (from override connectors.ethereum.streams)",
        ),
        (
            {"connectors.ethereum.rpc_url": "wss://node"},
            "config error: connectors.ethereum.rpc_url: rpc_url must be an http:// or https:// URL"
            " (the WebSocket one goes in ws_url) (from override connectors.ethereum.rpc_url)",
        ),
    ],
)
def test_a_bad_connector_entry_is_one_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=overrides)
    assert str(err.value) == message


def test_config_check_prints_one_line_for_a_bad_connector_type() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coattail", "config", "check"],
        cwd=REPO,
        env={**os.environ, "COATTAIL_CONNECTORS__COINBASE__TYPE": "coinbasepro"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr == (
        "error: config error: connectors.coinbase.type: 'coinbasepro' is unknown; one of binance, bybit,"
        " coinbase, ethereum, kraken, okx, solana (from COATTAIL_CONNECTORS__COINBASE__TYPE='coinbasepro')\n"
    )


def test_without_the_connectors_extra_the_entries_load_unchecked() -> None:
    """The API image has no websockets/httpx: its settings still load, the connectors are not its job."""
    code = (
        "import sys\n"
        "sys.modules['websockets'] = None\n"
        "from coattail.settings import load_settings\n"
        "s = load_settings()\n"
        "print(type(s.connectors['binance']).__name__, s.connectors['binance'].type)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [UncheckedConnectorSettings.__name__, "binance"]
