"""`coattail batch …`: backfill, reprocess, quality, score-wallets, refresh-labels, backtest, fit-predictor,
maintain, history and the daily workflow."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from coattail.cliutil import fail
from coattail.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
run_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(run_app, name="run", help="Run a whole workflow (steps in order, retries, failure branch).")

Tier = Annotated[str | None, typer.Option(help="Tier (default: config `tier`)")]


def _setup(tier: str | None) -> Settings:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return load_settings(tier)


def parse_time(value: str, option: str) -> datetime:
    """ISO date or date-time; without an offset it is UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {value!r} is not an ISO date or date-time (e.g. 2026-01-05 or 2026-01-05T12:00:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_day(value: str | None) -> date:
    from jobs.batch.workflow import yesterday

    if value is None:
        return yesterday()
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--date {value!r} is not a date (YYYY-MM-DD)")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command("backfill")
def backfill_command(
    start: Annotated[str, typer.Option(help="Range start (ISO, UTC), inclusive")],
    end: Annotated[str, typer.Option(help="Range end (ISO, UTC), exclusive")],
    symbol: Annotated[
        list[str] | None,
        typer.Option(help="BASE-QUOTE, repeatable (default: all configured Binance symbols)"),
    ] = None,
    flush_rows: Annotated[int, typer.Option(help="Rows per Iceberg commit")] = 10_000,
    tier: Tier = None,
) -> None:
    """Load Binance aggTrades history into raw_trades and the raw zone (resumable, idempotent)."""
    from connectors.rest import RestError
    from jobs.batch.backfill import backfill

    settings = _setup(tier)
    symbols = symbol or settings.instruments.get(settings.batch.backfill_exchange, [])
    try:
        results = backfill(
            settings, symbols, parse_time(start, "--start"), parse_time(end, "--end"), flush_rows=flush_rows
        )
    except (ValueError, RestError) as exc:
        fail(str(exc), 1)
    _echo_json([r.__dict__ | {"raw_files": len(r.raw_files)} for r in results])


@app.command("reprocess")
def reprocess_command(
    start: Annotated[str, typer.Option(help="Range start (ISO, UTC), inclusive")],
    end: Annotated[str, typer.Option(help="Range end (ISO, UTC), exclusive")],
    as_of_snapshot: Annotated[int | None, typer.Option(help="raw_trades snapshot id to read")] = None,
    as_of_timestamp: Annotated[
        str | None, typer.Option(help="Read raw_trades as it was at this time")
    ] = None,
    swap: Annotated[bool, typer.Option(help="Replace the range of anomaly_alerts in one commit")] = False,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    tier: Tier = None,
) -> None:
    """Re-run the detectors on raw_trades as of a snapshot/time; print the diff against anomaly_alerts."""
    from jobs.batch.reprocess import ReprocessError, reprocess, resolve_snapshot
    from jobs.batch.spark import batch_session

    if as_of_snapshot is not None and as_of_timestamp is not None:
        fail("give --as-of-snapshot or --as-of-timestamp, not both")
    settings = _setup(tier)
    as_of = parse_time(as_of_timestamp, "--as-of-timestamp") if as_of_timestamp else None
    begin, finish = parse_time(start, "--start"), parse_time(end, "--end")
    try:  # resolved before Spark starts: a wrong id fails in a second, not after a JVM start
        snapshot = resolve_snapshot(settings, as_of_snapshot, as_of)
    except ReprocessError as exc:
        fail(str(exc), 1)
    spark = batch_session(settings, master=master)
    try:
        result = reprocess(spark, settings, begin, finish, snapshot_id=snapshot, swap=swap)
    except ReprocessError as exc:
        fail(str(exc), 1)
    finally:
        spark.stop()
    sys.stderr.write(result.diff.render() + "\n")
    _echo_json(result.summary())


@app.command("quality")
def quality_command(
    day: Annotated[str | None, typer.Option("--date", help="UTC day YYYY-MM-DD (default: yesterday)")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON report here")] = None,
    tier: Tier = None,
) -> None:
    """Quality checks of one day; JSON report on stdout, exit 1 when below batch.quality_pass_pct."""
    from jobs.batch.quality import check_day

    settings = _setup(tier)
    report = check_day(settings, parse_day(day))
    text = json.dumps(report.to_json(), indent=2, default=str)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    typer.echo(text)
    if not report.passed:
        fail(f"quality check failed for {report.date}: {', '.join(report.failures())}", 1)


@app.command("score-wallets")
def score_wallets_command(
    as_of: Annotated[str | None, typer.Option(help="Score as of this time (ISO, UTC; default: now)")] = None,
    as_of_snapshot: Annotated[
        int | None, typer.Option(help="onchain_events snapshot id to read (default: the current one)")
    ] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    tier: Tier = None,
) -> None:
    """MOD-004: every wallet's alpha score from onchain_events (one snapshot) into wallet_scores and the
    API's leaderboard."""
    from jobs.batch.spark import batch_session
    from jobs.batch.wallets import score_step

    settings = _setup(tier)
    when = parse_time(as_of, "--as-of") if as_of else datetime.now(UTC)
    spark = batch_session(settings, master=master)
    try:
        summary, _ = score_step(spark, settings, when, as_of_snapshot)
    finally:
        spark.stop()
    _echo_json(summary)


@app.command("backtest")
def backtest_command(
    start: Annotated[str | None, typer.Option(help="Alerts detected from (ISO, UTC), inclusive")] = None,
    end: Annotated[str | None, typer.Option(help="Alerts detected until (ISO, UTC), exclusive")] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="The daily step instead: this UTC day and the one before")
    ] = None,
    as_of_snapshot: Annotated[
        int | None, typer.Option(help="raw_trades snapshot id to price with (default: the current one)")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="HTML report file or folder (default: <state>/reports/)")
    ] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    tier: Tier = None,
) -> None:
    """MOD-011: back-test the alerts of [start, end) against raw_trades (one snapshot) into
    backtest_results; prints the table and writes the HTML report."""
    from jobs.batch.backtest import (
        ALERTS_TABLE,
        BACKTESTER,
        BacktestError,
        backtest_step,
        backtester,
        check_range,
        resolve_snapshot,
        run_backtest,
    )
    from jobs.batch.backtest_report import print_table
    from jobs.batch.spark import batch_session
    from jobs.batch.wallets import skipped

    if day is not None and (start or end or as_of_snapshot is not None):
        fail("give --date (the daily step) or --start/--end [--as-of-snapshot], not both")
    if day is None and (start is None or end is None):
        fail("give --start and --end (or --date)")
    if day is None:
        begin, finish = parse_time(start or "", "--start"), parse_time(end or "", "--end")
    settings = _setup(tier)
    if day is not None and (skip := skipped(settings, BACKTESTER)) is not None:
        _echo_json(skip)  # the daily step, like the workflow's: skipped where MOD-011 is not in the tier
        return
    try:  # checked before Spark starts: a wrong range, id or missing table fails in a second
        backtester(settings)
        if day is None:
            begin, finish = check_range(begin, finish)
        resolve_snapshot(settings, as_of_snapshot)
        from jobs.batch import lake

        if lake.existing_table(settings, ALERTS_TABLE) is None:
            raise BacktestError(f"{ALERTS_TABLE} does not exist yet; no alerts to back-test")
    except BacktestError as exc:
        fail(str(exc), 1)
    spark = batch_session(settings, master=master)
    try:
        if day is not None:
            _echo_json(backtest_step(spark, settings, parse_day(day)))
            return
        result = run_backtest(
            spark, settings, begin, finish, snapshot_id=as_of_snapshot,
            report_dir=report or settings.state_path("reports"),
        )  # fmt: skip
    except BacktestError as exc:
        fail(str(exc), 1)
    finally:
        spark.stop()
    run = result.run
    span = f"{run.window_start:%Y-%m-%d %H:%M} to {run.window_end:%Y-%m-%d %H:%M} UTC"
    print_table(result.rows, title=f"Back-test {span} (as of {run.as_of:%Y-%m-%d %H:%M})")
    alerts = ", ".join(a.alert_type for a in run.alerts)
    typer.echo(f"run {run.run_id}: {run.alerts_evaluated} alerts, {run.pending} pending; raised: {alerts}")
    typer.echo(f"report: {result.report_path}")


@app.command("fit-predictor")
def fit_predictor_command(
    start: Annotated[str, typer.Option(help="Scored windows from (ISO, UTC), inclusive")],
    end: Annotated[str, typer.Option(help="Scored windows until (ISO, UTC), exclusive")],
    output: Annotated[
        Path | None, typer.Option(help="Coefficients file to write (default: MOD-010's coefficients_file)")
    ] = None,
    as_of_snapshot: Annotated[
        int | None, typer.Option(help="raw_trades snapshot id to label with (default: the current one)")
    ] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    tier: Tier = None,
) -> None:
    """MOD-010: fit its logistic regressions on predictive_scores + raw_trades (time-ordered split, no
    look-ahead); writes the coefficients file with out-of-sample AUC and calibration."""
    from jobs.batch.predictor import FitError, default_output, fit_predictor, resolve_snapshot
    from jobs.batch.spark import batch_session

    begin, finish = parse_time(start, "--start"), parse_time(end, "--end")
    if begin >= finish:
        fail(f"--start {start!r} must be before --end {end!r}")
    settings = _setup(tier)
    try:  # checked before Spark starts: a wrong id or a missing table fails in a second
        target = output or default_output(settings)
        snapshot = resolve_snapshot(settings, as_of_snapshot)
    except FitError as exc:
        fail(str(exc), 1)
    spark = batch_session(settings, master=master)
    try:
        report = fit_predictor(spark, settings, begin, finish, target, snapshot_id=snapshot)
    except FitError as exc:
        fail(str(exc), 1)
    finally:
        spark.stop()
    _echo_json(report.summary())


@app.command("refresh-labels")
def refresh_labels_command(
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    tier: Tier = None,
) -> None:
    """MOD-005: labeled_wallets from config/labels and the operator files (and the top wallets as smart
    money when MOD-004's smart_money switch is on); prints what was added, changed and removed."""
    from jobs.batch.spark import batch_session
    from jobs.batch.wallets import labels_step

    settings = _setup(tier)
    spark = batch_session(settings, master=master)
    try:
        summary = labels_step(spark, settings, datetime.now(UTC))
    finally:
        spark.stop()
    for problem in summary.get("problems", []):
        sys.stderr.write(problem + "\n")
    _echo_json(summary)


@app.command("maintain")
def maintain_command(
    older_than: Annotated[
        str | None, typer.Option(help="Expire snapshots older than this (default: now - retention days)")
    ] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    tier: Tier = None,
) -> None:
    """Compact small files, expire old snapshots and remove orphan files of every tier table."""
    from jobs.batch.maintain import maintain
    from jobs.batch.spark import batch_session

    settings = _setup(tier)
    limit = parse_time(older_than, "--older-than") if older_than else None
    spark = batch_session(settings, master=master)
    try:
        results = maintain(spark, settings, older_than=limit)
    finally:
        spark.stop()
    _echo_json([r.to_json() for r in results])


@app.command("history")
def history_command(limit: Annotated[int, typer.Option(help="Rows to show")] = 20, tier: Tier = None) -> None:
    """Recent workflow steps from the batch_runs table."""
    from jobs.batch.runs import history

    _echo_json(history(_setup(tier), limit))


@run_app.command("daily")
def daily_command(
    day: Annotated[str | None, typer.Option("--date", help="UTC day YYYY-MM-DD (default: yesterday)")] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of backfill,reprocess,quality,wallets,labels,backtest,maintain"
        ),
    ] = None,
    tier: Tier = None,
) -> None:
    """backfill → reprocess → quality → wallets → labels → maintain, with retries (wallets and labels
    skip where MOD-004/005 are not in the tier); failure branch notifies, exit 1."""
    from jobs.batch.workflow import STEPS, DailyWorkflow

    chosen = tuple(s.strip() for s in steps.split(",")) if steps else STEPS
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        fail(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    settings = _setup(tier)
    result = DailyWorkflow(settings, parse_day(day), interactive=None).run(
        tuple(s for s in STEPS if s in chosen)
    )
    _echo_json(result.to_json())
    if not result.succeeded:
        fail(f"daily batch failed at {result.failed_step}: {result.error}", 1)
