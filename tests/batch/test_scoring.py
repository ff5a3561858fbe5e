"""The MOD-004 batch scoring step against the real local Iceberg catalog: onchain_events read at one
snapshot (time travel), the same scores as the pure functions, wallet_scores appended once per as_of,
and the smart-money selection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts.onchain import OnchainEvent
from coattail.contracts.spark import ddl_columns, spark_schema
from coattail.settings import Settings, load_settings
from jobs.batch import lake
from jobs.batch.scoring import ScoringError, latest_scores, score_wallets, scorer, top_wallets
from jobs.batch.spark import batch_session
from jobs.sinks.iceberg import ensure_table, qualified
from jobs.wallet_logic import ChainEvent, scores_as_of
from tests.jobs.wallet_events import NOISE, SMART, SOL_WALLETS, scenario

pytestmark = [pytest.mark.spark, pytest.mark.services]
CODE = {"modules.MOD-004.code": "jobs.detectors.wallets"}  # (features.yaml may not name it yet)


@pytest.fixture(scope="module")
def lake_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("scoring-lake")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_STATE_DIR", str(state))
        yield state


def settings_for(state: Path) -> Settings:
    return load_settings("small", env={"COATTAIL_STATE_DIR": str(state)}, overrides=CODE)


@pytest.fixture(scope="module")
def spark(lake_state: Path) -> Iterator[Any]:
    session = batch_session(settings_for(lake_state), master="local[2]")
    yield session
    session.stop()


def _append(spark: Any, settings: Settings, events: list[OnchainEvent]) -> int:
    ensure_table(
        spark, settings, "onchain_events", ddl_columns(OnchainEvent), "days(block_timestamp), blockchain"
    )
    schema = spark_schema(OnchainEvent)
    rows = [tuple(getattr(e, f.name) for f in schema.fields) for e in events]
    spark.createDataFrame(rows, schema).writeTo(qualified(settings, "onchain_events")).append()
    snapshot = lake.existing_table(settings, "onchain_events")
    assert snapshot is not None
    current = snapshot.current_snapshot()
    assert current is not None
    return int(current.snapshot_id)


FIELDS = ("block_number", "log_index", "event_id", "event_type", "tx_hash", "trader", "token", "token_symbol",
          "amount", "token_in", "token_in_symbol", "amount_in", "token_out", "token_out_symbol", "amount_out",
          "usd_value")  # fmt: skip


def _chain_events(events: list[OnchainEvent], chain: str) -> list[ChainEvent]:
    return [
        ChainEvent(int(e.block_timestamp.timestamp() * 1000), *(getattr(e, f) for f in FIELDS))
        for e in events
        if e.blockchain == chain
    ]


def _summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, int, float, float]]:
    return sorted(
        (r["blockchain"], r["wallet"], r["trade_count"], r["alpha"], r["alpha_percentile"]) for r in rows
    )


def test_scoring_reads_one_snapshot_and_appends_once(lake_state: Path, spark: Any) -> None:
    settings = settings_for(lake_state)
    with pytest.raises(ScoringError, match="onchain_events does not exist yet"):
        score_wallets(spark, settings, datetime(2026, 1, 9, tzinfo=UTC))
    events = scenario()
    first, later = events[:-5], events[-5:]  # later: SMART's 7th trade and the closers
    s1 = _append(spark, settings, first)
    s2 = _append(spark, settings, later)
    as_of = events[-1].block_timestamp + timedelta(minutes=10)

    old = score_wallets(spark, settings, as_of, snapshot_id=s1)  # time travel: as the lake was at s1
    assert old.snapshot_id == s1
    rules = scorer(settings).rules
    as_of_ms = int(as_of.timestamp() * 1000)
    expected = [
        (chain, s.wallet, s.score.trade_count, s.score.alpha, s.alpha_percentile)
        for chain in ("ethereum", "solana")
        for s in scores_as_of(_chain_events(first, chain), as_of_ms, rules)
    ]
    assert _summary(old.rows) == sorted(expected)
    by_wallet = {r["wallet"]: r for r in old.rows}
    assert set(by_wallet) == {SMART, *NOISE, *SOL_WALLETS}
    assert (by_wallet[SMART]["trade_count"], by_wallet[SMART]["alpha_percentile"]) == (6, 100.0)
    assert {by_wallet[w]["alpha_percentile"] for w in SOL_WALLETS} == {0.0, 100.0}  # per chain
    assert all(r["scored_at"] == as_of for r in old.rows)
    assert old.rows_written == len(old.rows) == 6

    later_as_of = as_of + timedelta(minutes=1)
    now = score_wallets(spark, settings, later_as_of)  # the current snapshot
    assert now.snapshot_id == s2
    assert {r["wallet"]: r["trade_count"] for r in now.rows}[SMART] == 7
    assert now.rows_written == 6
    again = score_wallets(spark, settings, later_as_of)
    assert again.rows_written == 0
    assert again.rows == now.rows
    assert again.summary()["wallets_per_chain"] == {"ethereum": 4, "solana": 2}

    table = qualified(settings, "wallet_scores")
    spark.sql(f"REFRESH TABLE {table}")
    assert spark.table(table).count() == 12  # 6 rows per as_of, each once
    latest = latest_scores(spark, settings)
    assert {(r["wallet"], r["scored_at"]) for r in latest} == {(r["wallet"], later_as_of) for r in now.rows}

    with pytest.raises(ScoringError, match="has no snapshot 12345"):
        score_wallets(spark, settings, as_of, snapshot_id=12345)


def test_top_wallets_are_the_newest_rows_at_the_top() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)

    def row(chain: str, wallet: str, at: datetime, alpha: float, pct: float) -> dict[str, Any]:
        return {
            "blockchain": chain,
            "wallet": wallet,
            "scored_at": at,
            "alpha": alpha,
            "alpha_percentile": pct,
        }

    rows = [
        row("ethereum", "a", t0, 9.0, 100.0),
        row("ethereum", "a", t1, 1.0, 50.0),  # a fell: its newest row counts
        row("ethereum", "b", t1, 5.0, 99.0),
        row("ethereum", "c", t1, 6.0, 99.5),
        row("solana", "s", t1, 2.0, 100.0),
    ]
    assert [(r["blockchain"], r["wallet"]) for r in top_wallets(rows, 99, 1)] == [
        ("ethereum", "c"),
        ("solana", "s"),
    ]
    assert [r["wallet"] for r in top_wallets(rows, 99, 10)] == ["c", "b", "s"]
    assert top_wallets(rows, 100.1, 10) == []


def test_the_daily_wallet_steps_publish_scores_and_labels_to_the_wallet_store(
    lake_state: Path,
    spark: Any,
    dynamodb_endpoint: str,
    unique_name: str,
    tmp_path: Path,
    aws_local_env: None,
) -> None:
    """The workflow's wallets and labels steps on the medium tier: scores and labels in the lake, then in
    the API's wallet store on DynamoDB Local; the top wallet written back as smart money; a second run
    of the labels step changes nothing."""
    from coattail.hotstore import DynamoAlertStore, make_client
    from coattail.hotstore.wallets import DynamoWalletStore
    from jobs.batch.workflow import DailyWorkflow

    whale = "0x" + "ab" * 20
    operator = tmp_path / "labels.csv"
    operator.write_text(
        f"address,blockchain,label,entity_type,source\n{whale},ethereum,Test Whale,whale,test\n"
    )
    settings = load_settings(
        "medium",
        env={"COATTAIL_STATE_DIR": str(lake_state)},
        overrides={
            "hot_store.endpoint_url": dynamodb_endpoint,
            "hot_store.table": f"alerts-{unique_name}",
            "modules.MOD-005.params.label_files": [str(operator)],
            "modules.MOD-004.params.smart_money": {"enabled": True, "min_percentile": 99, "max_wallets": 5},
            "batch.reprocess_runner": "local",
        },
    )
    day = scenario()[-1].block_timestamp.date()  # the lake holds the first test's events (module lake)
    workflow = DailyWorkflow(settings, day, spark_factory=lambda: spark)
    result = workflow.run(("wallets", "labels"))
    assert result.succeeded, result.error
    scored, labelled = result.outputs["wallets"], result.outputs["labels"]
    assert scored["published"] == scored["wallets_scored"] > 0
    assert labelled["smart_money"] >= 1
    assert labelled["added"] == labelled["rows"]

    store = DynamoWalletStore(
        DynamoAlertStore(make_client(dynamodb_endpoint, "us-west-2"), settings.hot_store.table)
    )
    top, _ = store.top("ethereum", 10)
    assert top[0]["address"] == SMART
    assert top[0]["alpha_percentile"] == 100.0
    assert top[0]["label"]["entity_type"] == "smart_money"  # the write-back reached the store
    label = store.label("ethereum", whale)
    assert label is not None
    assert label["label"] == "Test Whale"

    again = DailyWorkflow(settings, day, spark_factory=lambda: spark).run(("labels",))
    assert again.succeeded, again.error
    assert (
        again.outputs["labels"]["added"],
        again.outputs["labels"]["changed"],
        again.outputs["labels"]["removed"],
    ) == (0, 0, 0)
    small = load_settings("small", env={"COATTAIL_STATE_DIR": str(lake_state)})
    skipped = DailyWorkflow(small, day, spark_factory=lambda: spark).run(("wallets", "labels"))
    assert skipped.outputs == {
        "wallets": {"skipped": "MOD-004 is not in tier 'small'"},
        "labels": {"skipped": "MOD-005 is not in tier 'small'"},
    }
