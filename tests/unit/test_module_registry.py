"""The module registry is a public contract (DESIGN.md "The module registry"): names, alert types,
default severity bands, dependencies between modules, and the default instruments."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coattail.settings import ConfigError, load_settings
from coattail.settings.modules import severity_for
from jobs.detectors.spread import SpreadParams
from jobs.detectors.volume import VolumeAnomalyParams

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]

# DESIGN.md's table, copied by hand on purpose: a config edit that renames a module or an alert type
# breaks users' alert rules, so it must break this test too.
REGISTRY = {
    "MOD-001": ("volume-anomaly", ["volume_spike"], "volume_aggregates"),
    "MOD-002": ("whale-detector", ["whale_trade"], "whale_trades"),
    "MOD-003": ("spread-calculator", ["spread_divergence"], "exchange_spreads"),
    "MOD-004": ("wallet-scorer", ["high_alpha_wallet", "score_change"], "wallet_scores"),
    "MOD-005": ("labeled-whales", ["known_whale_activity"], "labeled_wallets"),
    "MOD-006": ("flow-direction", ["accumulation_signal", "distribution_signal"], "flow_direction"),
    "MOD-007": ("consensus", ["consensus_bullish", "consensus_bearish"], "consensus_signals"),
    "MOD-008": ("onchain-ingester", ["large_transfer", "dex_swap"], "onchain_events"),
    "MOD-009": ("dex-tracker", ["large_dex_swap", "liquidity_change"], "dex_trades"),
    "MOD-010": ("predictive-scorer", ["high_probability_move", "score_update"], "predictive_scores"),
    "MOD-011": ("backtester", ["backtest_complete", "signal_degradation"], "backtest_results"),
}


def test_names_alert_types_and_tables_are_the_design_registry() -> None:
    modules = load_settings("large", env={}).modules
    assert {m: (s.name, s.alert_types, s.output_table) for m, s in modules.items()} == REGISTRY


def test_default_severity_bands() -> None:
    settings = load_settings(env={})
    volume = settings.module_params("MOD-001", VolumeAnomalyParams).severity_bands
    assert [severity_for(volume, z) for z in (2.5, 2.51, 3.5, 3.51, 50)] == [
        None, "medium", "medium", "high", "high",
    ]  # fmt: skip
    spread = settings.module_params("MOD-003", SpreadParams).severity_bands
    assert [severity_for(spread, pct) for pct in (0.5, 0.51, 1.0, 1.01, 9)] == [
        None, "medium", "medium", "high", "high",
    ]  # fmt: skip


def test_every_shipped_tier_satisfies_its_dependencies() -> None:
    for tier in ("small", "medium", "large"):
        settings = load_settings(tier, env={})
        for module_id in settings.active_modules:
            assert set(settings.modules[module_id].depends_on) <= set(settings.active_modules)


def _config_copy(tmp_path: Path, tier_text: str) -> Path:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "tiers" / "partial.yaml").write_text(tier_text)
    return config


def test_a_module_without_its_dependency_is_one_line(tmp_path: Path) -> None:
    config = _config_copy(tmp_path, "extends: small\nmodules: [MOD-007]\n")
    with pytest.raises(ConfigError, match=r"MOD-007 \(consensus\) without MOD-006 \(flow-direction\)"):
        load_settings("partial", config_dir=config, env={})
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "config", "check", "--tier", "partial"],
        capture_output=True,
        text=True,
        env={**os.environ, "COATTAIL_CONFIG_DIR": str(config)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "MOD-006 (flow-direction), which it depends on" in lines[0]


def test_an_unknown_dependency_is_refused(tmp_path: Path) -> None:
    config = _config_copy(tmp_path, "extends: small\n")
    env = {"COATTAIL_MODULES__MOD_003__DEPENDS_ON": "[MOD-098]"}
    with pytest.raises(ConfigError, match="MOD-003 depends on unknown module MOD-098"):
        load_settings("partial", config_dir=config, env=env)


def test_default_instruments_cover_btc_eth_sol_on_both_exchanges() -> None:
    settings = load_settings(env={})
    for base, quote in (("binance", "USDT"), ("coinbase", "USD")):
        assert settings.instruments[base] == [f"{a}-{quote}" for a in ("BTC", "ETH", "SOL")]
    assert settings.equivalences["SOL"][:2] == ["binance:SOL-USDT", "coinbase:SOL-USD"]
