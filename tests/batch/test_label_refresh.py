"""The daily label refresh against the real local Iceberg catalog: the first run fills
``labeled_wallets``, a second run changes nothing (no commit), edits show as added/changed/removed,
unchanged rows keep their updated_at, and a malformed operator row is reported and skipped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coattail.chains.labels import WalletLabel, load_labels
from coattail.settings import Settings, load_settings
from jobs.batch.labels import refresh_labels
from jobs.batch.spark import batch_session
from jobs.label_source import read_table_labels
from jobs.sinks.iceberg import qualified

pytestmark = pytest.mark.spark

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
WHALE = "0x" + "ab" * 20
FUND = "0x" + "cd" * 20
SMART = "0x" + "5e" * 20


@pytest.fixture(scope="module")
def lake_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("label-lake")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_STATE_DIR", str(state))
        yield state


def settings_for(state: Path, **overrides: Any) -> Settings:
    return load_settings("small", env={"COATTAIL_STATE_DIR": str(state)}, overrides=overrides)


@pytest.fixture(scope="module")
def spark(lake_state: Path) -> Iterator[Any]:
    session = batch_session(settings_for(lake_state), master="local[2]")
    yield session
    session.stop()


def snapshots(spark: Any, settings: Settings) -> int:
    table = qualified(settings, "labeled_wallets")
    return int(spark.sql(f"SELECT count(*) AS n FROM {table}.snapshots").collect()[0]["n"])  # noqa: S608


def table(spark: Any, settings: Settings) -> dict[str, WalletLabel]:
    return {label.address: label for label in read_table_labels(spark, settings) or []}


def test_refresh_is_idempotent_and_reports_changes(spark: Any, lake_state: Path, tmp_path: Path) -> None:
    desk = tmp_path / "desk.csv"
    desk.write_text(
        "address,blockchain,label,entity_type,source\n"
        f"{WHALE},ethereum,Desk Whale,whale,desk notes\n"
        f"{FUND},ethereum,Desk Fund,fund,desk notes\n"
        "0x1234,ethereum,Broken,fund,desk notes\n"  # line 4: malformed address, reported and skipped
    )
    settings = settings_for(
        lake_state, **{"lake.namespace": "labels_refresh", "modules.MOD-005.params.label_files": [str(desk)]}
    )
    shipped = len(load_labels().book)

    first = refresh_labels(spark, settings, NOW)
    assert (first.added, first.changed, first.removed) == (shipped + 2, 0, 0)
    assert len(first.problems) == 1
    assert first.problems[0].startswith(f"{desk}, line 4: ")
    rows = table(spark, settings)
    assert len(rows) == shipped + 2
    assert "0x1234" not in rows
    assert rows[WHALE].updated_at == NOW  # no updated_at column: the run's time
    assert rows["0x28c6c06298d514db089934071355e5743bf21d60"].updated_at == datetime(2026, 12, 1, tzinfo=UTC)
    commits = snapshots(spark, settings)

    second = refresh_labels(spark, settings, NOW + timedelta(days=1))
    assert (second.added, second.changed, second.removed) == (0, 0, 0)
    assert snapshots(spark, settings) == commits  # nothing differed: no commit
    assert table(spark, settings) == rows  # updated_at kept too

    # the desk relabels its whale, drops its fund; the scorer writes back a smart-money wallet
    later = NOW + timedelta(days=2)
    desk.write_text(
        f"address,blockchain,label,entity_type,source\n{WHALE},ethereum,Desk Whale 2,whale,desk notes\n"
    )
    smart = WalletLabel(
        address=SMART, blockchain="ethereum", label="smart money #1", entity_type="smart_money",
        source="MOD-004 wallet-scorer", updated_at=later,
    )  # fmt: skip
    third = refresh_labels(spark, settings, later, smart_money=[smart])
    assert (third.added, third.changed, third.removed, third.problems) == (1, 1, 1, [])
    assert snapshots(spark, settings) == commits + 1
    after = table(spark, settings)
    assert set(after) == (set(rows) - {FUND}) | {SMART}
    assert (after[WHALE].label, after[WHALE].updated_at) == ("Desk Whale 2", later)
    assert after[SMART].entity_type == "smart_money"
    unchanged = set(rows) - {FUND, WHALE}
    assert all(after[a] == rows[a] for a in unchanged)

    fourth = refresh_labels(spark, settings, later + timedelta(days=1), smart_money=[smart])
    assert (fourth.added, fourth.changed, fourth.removed) == (0, 0, 0)
    assert snapshots(spark, settings) == commits + 1
    assert fourth.to_json()["rows"] == len(after)


def test_a_curated_label_wins_over_smart_money(spark: Any, lake_state: Path, tmp_path: Path) -> None:
    settings = settings_for(lake_state, **{"lake.namespace": "labels_precedence"})
    binance = "0x28c6c06298d514db089934071355e5743bf21d60"
    smart = WalletLabel(
        address=binance, blockchain="ethereum", label="smart money #7", entity_type="smart_money",
        source="MOD-004 wallet-scorer", updated_at=NOW,
    )  # fmt: skip
    refresh_labels(spark, settings, NOW, smart_money=[smart])
    assert table(spark, settings)[binance].label == "Binance 14"


def test_the_stream_book_rereads_the_table_at_most_every_reload_seconds(spark: Any, lake_state: Path) -> None:
    from jobs.label_source import LabelSource

    settings = settings_for(
        lake_state, **{"lake.namespace": "labels_reload", "modules.MOD-005.params.reload_seconds": 300}
    )
    clock = [1000.0]
    source = LabelSource(settings, clock=lambda: clock[0])
    assert source.refresh(spark).get("ethereum", SMART) is None  # no table yet: the files' book
    smart = WalletLabel(
        address=SMART, blockchain="ethereum", label="smart money #1", entity_type="smart_money",
        source="MOD-004 wallet-scorer", updated_at=NOW,
    )  # fmt: skip
    refresh_labels(spark, settings, NOW, smart_money=[smart])
    clock[0] += 299
    assert source.refresh(spark).get("ethereum", SMART) is None  # read less than reload_seconds ago
    clock[0] += 1
    found = source.refresh(spark).get("ethereum", SMART)
    assert found is not None
    assert found.entity_type == "smart_money"
    refresh_labels(spark, settings, NOW)  # the scorer no longer lists it
    clock[0] += 300
    assert source.refresh(spark).get("ethereum", SMART) is None
    assert source.refresh(None) is source.book  # no session (unit tests, batch finish): as it is
