"""The module framework: tiers select detectors; a new detector is one class plus one config entry."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from coattail.settings import ConfigError, load_settings
from jobs.framework import BaseDetector, DetectorResult, ModuleRegistry

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_small_tier_runs_the_three_cex_detectors() -> None:
    detectors = ModuleRegistry(load_settings("small")).detectors()
    assert [(d.module_id, d.module_name, d.stateful) for d in detectors] == [
        ("MOD-001", "volume-anomaly", True),
        ("MOD-002", "whale-detector", False),
        ("MOD-003", "spread-calculator", True),
    ]
    assert [d.output_table() for d in detectors] == ["volume_aggregates", "whale_trades", "exchange_spreads"]
    assert detectors[1].alert_types() == ["whale_trade"]


def test_unimplemented_module_is_one_clear_sentence(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    features = yaml.safe_load((config / "features.yaml").read_text())
    # configured (a name, alert types, a table), not built (no `code`)
    features["modules"]["MOD-098"] = {
        "name": "crystal-ball",
        "alert_types": ["omen"],
        "output_table": "omens",
    }
    (config / "features.yaml").write_text(yaml.safe_dump(features))
    with pytest.raises(ConfigError) as err:
        ModuleRegistry(load_settings("large", config_dir=config)).detectors(["MOD-098"])
    assert str(err.value) == "MOD-098 (crystal-ball) is not implemented yet; choose a tier without it"


def test_adding_a_detector_is_a_class_and_a_config_entry(tmp_path: Path) -> None:
    class TinyTradeCounter(BaseDetector):  # defined here, nothing in jobs/ changes
        module_id = "MOD-099"
        module_name = "tiny-counter"

        def table_columns(self) -> str:
            return "symbol string, trades long"

        def partitioning(self) -> str:
            return "symbol"

        def record_keys(self) -> tuple[str, ...]:
            return ("symbol",)

        def process(self, trades: Any) -> Any:
            return trades.groupBy("symbol").count()

        def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
            return DetectorResult(records=[{"symbol": r["symbol"], "trades": r["count"]} for r in rows])

    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    features = yaml.safe_load((config / "features.yaml").read_text())
    features["modules"]["MOD-099"] = {"name": "tiny-counter", "alert_types": ["tiny"], "output_table": "tiny"}
    (config / "features.yaml").write_text(yaml.safe_dump(features))
    (config / "tiers" / "tiny.yaml").write_text("extends: small\nmodules: [MOD-099]\n")

    detectors = ModuleRegistry(load_settings("tiny", config_dir=config)).detectors()
    assert [d.module_id for d in detectors] == ["MOD-001", "MOD-002", "MOD-003", "MOD-099"]
    assert isinstance(detectors[-1], TinyTradeCounter)
    assert detectors[-1].output_table() == "tiny"
