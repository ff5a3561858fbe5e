"""Configuration loader: tiers, environment overrides and one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coattail.settings import ConfigError, load_settings
from coattail.settings.modules import severity_for
from jobs.detectors.volume import VolumeAnomalyParams
from jobs.detectors.whale import WhaleParams

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_small_tier_is_the_default() -> None:
    settings = load_settings(env={})
    assert settings.tier == "small"
    assert settings.active_modules == ["MOD-001", "MOD-002", "MOD-003"]
    assert settings.active_connectors == ["binance", "coinbase"]
    assert settings.alert_types() == ["volume_spike", "whale_trade", "spread_divergence"]


def test_tiers_are_supersets() -> None:
    medium = load_settings("medium", env={})
    large = load_settings("large", env={})
    # The wallet modules read on-chain events, so the medium tier runs the chain connectors; the large
    # tier adds the on-chain analytics, the predictive scorer and the backtester.
    assert medium.active_modules == [
        "MOD-001",
        "MOD-002",
        "MOD-003",
        "MOD-004",
        "MOD-005",
        "MOD-006",
        "MOD-007",
    ]
    assert large.active_modules == [*medium.active_modules, "MOD-008", "MOD-009", "MOD-010", "MOD-011"]
    assert (
        medium.active_connectors == large.active_connectors == ["binance", "coinbase", "ethereum", "solana"]
    )
    assert (medium.spark.executor.instances, large.spark.executor.cores) == (5, 2)


def test_default_instruments_and_equivalences() -> None:
    settings = load_settings(env={})
    assert {"BTC-USDT", "ETH-USDT"} <= set(settings.instruments["binance"])
    assert {"BTC-USD", "ETH-USD"} <= set(settings.instruments["coinbase"])
    assert settings.equivalences["BTC"] == [
        "binance:BTC-USDT", "coinbase:BTC-USD", "okx:BTC-USDT", "kraken:BTC-USD", "bybit:BTC-USDT",
    ]  # fmt: skip


def test_environment_overrides_are_typed() -> None:
    env = {
        "COATTAIL_STREAM__BACKEND": "kinesis",
        "COATTAIL_MODULES__MOD_001__PARAMS__Z_THRESHOLD": "3",
        "COATTAIL_API__CORS_ORIGINS": "[http://a.example, http://b.example]",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1234",
    }
    settings = load_settings(env=env)
    assert settings.stream.backend == "kinesis"
    assert settings.module_params("MOD-001", VolumeAnomalyParams).z_threshold == 3.0
    assert settings.api.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.stream.kafka.bootstrap_servers == "127.0.0.1:1234"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"COATTAIL_MODULES__MOD_001__PARAMS__Z_THRESHOLD": "abc"}, "z_threshold"),
        ({"COATTAIL_MODULES__MOD_001__PARAMS__Z_THRESHOLD": "-1"}, "greater than 0"),
        ({"COATTAIL_STREAM__BACKEND": "pigeon"}, "COATTAIL_STREAM__BACKEND='pigeon'"),
        ({"COATTAIL_STREAM__BACKEN": "kafka"}, "unknown setting"),
        ({"COATTAIL_TIER": "huge"}, "unknown tier 'huge'"),
        ({"COATTAIL_INSTRUMENTS__BINANCE": "[btcusdt]"}, "not BASE-QUOTE"),
    ],
)
def test_bad_overrides_fail_with_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_module_in_tier_and_missing_file(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "config" / "tiers" / "small.yaml").write_text("modules: [MOD-001, MOD-099]\n")
    with pytest.raises(ConfigError, match="unknown module MOD-099"):
        load_settings(config_dir=tmp_path / "config", env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(config_dir=tmp_path / "nowhere", env={})


def test_bad_severity_bands_are_refused() -> None:
    with pytest.raises(ConfigError, match="strictly increasing"):
        load_settings(
            env={},
            overrides={
                "modules.MOD-002.params.severity_bands": [
                    {"above": 5, "severity": "high"},
                    {"above": 1, "severity": "low"},
                ]
            },
        )


def test_severity_bands_are_strict_thresholds() -> None:
    bands = load_settings(env={}).module_params("MOD-002", WhaleParams).severity_bands
    assert severity_for(bands, 100_000) is None
    assert severity_for(bands, 100_000.01) == "medium"
    assert severity_for(bands, 500_001) == "high"
    assert severity_for(bands, 1_000_000.5) == "critical"


def _coattail(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "coattail", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_config_show_medium_lists_modules() -> None:
    result = _coattail("config", "show", "--tier", "medium")
    assert result.returncode == 0, result.stderr
    for i in range(1, 8):
        assert f"MOD-{i:03d}" in result.stdout
    assert "active_modules:\n- MOD-001" in result.stdout


def test_config_bad_override_is_one_line_and_nonzero() -> None:
    result = _coattail("config", "show", env={"COATTAIL_MODULES__MOD_003__PARAMS__THRESHOLD_PCT": "lots"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: config error: modules.MOD-003.params.threshold_pct")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"COATTAIL_QUALITY__REQUIRED_FIELDS": "[event_id, colour]"}, "quality.required_fields.1"),
        ({"DYNAMODB_ENDPOINT": "not a url"}, "hot_store.endpoint_url"),
        ({"DYNAMODB_ENDPOINT": "localhost:8000"}, "(from DYNAMODB_ENDPOINT)"),
        ({"COATTAIL_HOT_STORE__ENDPOINT_URL": "http://:8000"}, "http(s) URL with a host"),
        ({"COATTAIL_HOT_STORE__ENDPOINT_URL": "http://127.0.0.1:99999"}, "http(s) URL with a host"),
        ({"COATTAIL_STREAM__KINESIS__ENDPOINT_URL": "ftp://x"}, "stream.kinesis.endpoint_url"),
        ({"COATTAIL_HOT_STORE__TABLE": "bad name!"}, "not a DynamoDB table name"),
        ({"COATTAIL_HOT_STORE__TABLE": "ab"}, "not a DynamoDB table name"),
        ({"COATTAIL_HOT_STORE__TABLE": "x" * 256}, "not a DynamoDB table name"),
        ({"COATTAIL_API__API_KEYS": "['  ']"}, "API key is blank"),
        ({"COATTAIL_API__API_KEYS": "[good-key, '']"}, "api.api_keys.1"),
        ({"COATTAIL_API__CURSOR_SECRET": "short"}, "at least 16 characters"),
    ],
)
def test_values_that_would_fail_later_are_refused_now(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_good_endpoints_table_names_and_fields_pass() -> None:
    settings = load_settings(
        env={
            "DYNAMODB_ENDPOINT": "https://dynamodb.us-west-2.amazonaws.com",
            "COATTAIL_HOT_STORE__TABLE": "Alerts_v2.prod-1",
            "COATTAIL_QUALITY__REQUIRED_FIELDS": "[event_id, exchange, side, ingestion_timestamp]",
            "COATTAIL_API__API_KEYS": "[' padded-key ']",
        }
    )
    assert settings.hot_store.endpoint_url == "https://dynamodb.us-west-2.amazonaws.com"
    assert settings.hot_store.table == "Alerts_v2.prod-1"
    assert settings.api.api_keys == ["padded-key"]
    assert load_settings(env={"DYNAMODB_ENDPOINT": "http://[::1]:8000/"}).hot_store.endpoint_url


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"COATTAIL_QUALITY__REQUIRED_FIELDS": "[event_id, colour]"}, "'colour' is not a TradeEvent field"),
        ({"DYNAMODB_ENDPOINT": "garbage"}, "hot_store.endpoint_url"),
        ({"COATTAIL_HOT_STORE__TABLE": "bad name!"}, "hot_store.table"),
        ({"COATTAIL_API__API_KEYS": "['']"}, "api.api_keys.0"),
    ],
)
def test_config_check_refuses_with_one_line(env: dict[str, str], needle: str) -> None:
    result = _coattail("config", "check", env=env)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


@pytest.mark.parametrize("content", ["", "\n\n   \n", "# only a comment\n#another\n"])
def test_config_check_refuses_a_keys_file_without_keys(tmp_path: Path, content: str) -> None:
    keys = tmp_path / "keys"
    keys.write_text(content)
    result = _coattail("config", "check", env={"COATTAIL_API__API_KEYS_FILE": str(keys)})
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "holds no API key" in lines[0]
    keys.write_text("# one key\nsecret-key-1\n")
    ok = _coattail("config", "check", env={"COATTAIL_API__API_KEYS_FILE": str(keys)})
    assert ok.returncode == 0, ok.stderr
    assert "1 API key(s)" in ok.stdout


def test_the_lake_reader_has_its_own_bound_sized_for_its_slower_trigger() -> None:
    """bound / trigger is a query's catch-up ceiling: the lake path's must not fall below the live rate."""
    from jobs.sources import max_per_trigger

    s = load_settings("small")
    assert max_per_trigger(s, lake=False) == s.pipeline.max_offsets_per_trigger
    assert max_per_trigger(s, lake=True) == s.pipeline.lake_max_offsets_per_trigger
    ceiling = s.pipeline.lake_max_offsets_per_trigger / s.pipeline.trigger_interval_seconds
    assert ceiling >= 20_000  # the small tier's sustained-rate goal (issue 12)
    tuned = load_settings("small", overrides={"pipeline.lake_max_offsets_per_trigger": 1500})
    assert max_per_trigger(tuned, lake=True) == 1500
