"""`coattail pipeline run` (streaming, the SparkApplication's entry point) and `coattail detect` (batch)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from coattail.cliutil import fail
from coattail.errors import CoattailError
from coattail.hotstore import StoreUnavailableError
from coattail.retry import RetryExhaustedError, retry
from coattail.settings import ConfigError, Settings, load_settings
from coattail.settings.endpoints import kafka_bootstrap

pipeline_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
log = logging.getLogger("jobs.pipeline")


@pipeline_app.command("run")
def run_command(
    tier: Annotated[str | None, typer.Option(help="Tier to run (default: config `tier`)")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once everything available is processed")
    ] = False,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2] when embedded)")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default: config)")] = None,
    spark_ui: Annotated[
        bool, typer.Option("--spark-ui", help="Spark UI with its Prometheus endpoints (/metrics/prometheus)")
    ] = False,
    wait_seconds: Annotated[
        float | None,
        typer.Option(help="Wait this long at start for the broker (default: hot_store.retry_seconds)"),
    ] = None,
) -> None:
    """Run the streaming detector pipeline until SIGTERM/SIGINT (then stop gracefully, exit 0)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per callback otherwise
    settings = load_settings(tier)
    from jobs import metrics
    from jobs.framework.registry import ModuleRegistry
    from jobs.sinks.hot import HotStore

    detectors = ModuleRegistry(settings).detectors()  # fail fast on an unimplemented module
    # Dependencies first, before Spark starts: wait a bounded time for each, then fail in one line.
    try:
        wait_for_broker(settings, settings.hot_store.retry_seconds if wait_seconds is None else wait_seconds)
        hot = HotStore(settings)  # checks (or creates) the alerts table, retried like every write
    except (RetryExhaustedError, StoreUnavailableError) as exc:
        fail(str(exc), 1)
    p = settings.pipeline
    port = p.metrics_port if metrics_port is None else metrics_port
    if port:
        metrics.serve(p.metrics_host, port)
    from jobs.framework.runner import PipelineRunner
    from jobs.session import build_session

    spark = build_session(settings, master=master, shuffle_partitions=p.shuffle_partitions, spark_ui=spark_ui)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the running micro-batches", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out = settings.alerts_out
    publisher, dispatcher = None, None
    if out.enabled:  # alerts leave the system: the `alerts` topic, and webhooks from it
        from jobs.outbound.dispatcher import start_thread
        from jobs.outbound.publisher import AlertPublisher

        publisher = AlertPublisher(settings, store=hot.store)
        if out.webhooks:
            dispatcher = start_thread(settings, stop)
    runner = PipelineRunner(spark, settings, detectors=detectors, hot=hot, publisher=publisher)
    runner.start()
    names = ", ".join(d.module_id for d in detectors)
    log.info(
        "pipeline running: tier %s, modules %s, triggers: alerts %ss, windows %ss, lake %ss",
        settings.tier,
        names,
        p.alert_trigger_seconds,
        p.window_trigger_seconds,
        p.trigger_interval_seconds,
    )
    try:
        if until_idle:
            runner.drain()
        else:
            runner.run(max_seconds=max_seconds, stop=stop)
    except CoattailError as exc:  # PipelineError or the store's StoreUnavailableError: one line each
        fail(str(exc).splitlines()[0], 1)
    finally:
        runner.stop()
        stop.set()
        if dispatcher is not None:
            dispatcher.join(10)
        if publisher is not None:
            publisher.close()
        spark.stop()
        hot.close()
    log.info("pipeline stopped; totals %s", metrics.totals())


def wait_for_broker(settings: Settings, seconds: float) -> None:
    """Return once a Kafka bootstrap server accepts a connection (Kinesis: at once).

    Spark's Kafka source would otherwise start and fail with a long JVM trace; RetryExhaustedError
    (one line) after ``seconds``.
    """
    if settings.stream.backend != "kafka":
        return
    servers = kafka_bootstrap(settings)
    addresses = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"Kafka bootstrap server {server.strip()!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))

    def connect() -> None:
        errors: list[OSError] = []
        for address in addresses:
            try:
                socket.create_connection(address, timeout=5).close()
                return
            except OSError as exc:
                errors.append(exc)
        raise errors[0]

    retry(
        connect,
        what=f"Kafka broker at {servers}: connect",
        deadline_seconds=seconds,
        retryable=lambda exc: isinstance(exc, OSError),
        logger=log,
    )


def detect_app(
    output: Annotated[Path, typer.Option("--output", help="Alerts JSONL to write")],
    input: Annotated[
        Path | None, typer.Option("--input", help="TradeEvent JSONL or Parquet (file or folder)")
    ] = None,
    onchain: Annotated[
        Path | None,
        typer.Option(
            "--onchain",
            help="OnchainEvent JSONL or Parquet (file or folder) for the modules that read on-chain events",
        ),
    ] = None,
    tier: Annotated[str | None, typer.Option(help="Tier whose modules run (default: config `tier`)")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2])")] = None,
    tables: Annotated[
        Path | None,
        typer.Option("--tables", help="Also write each module's table rows here, one JSONL per table"),
    ] = None,
) -> None:
    """Run the tier's detectors on a bounded dataset and write the alerts (and module tables) as JSONL."""
    if input is None and onchain is None:
        fail("give --input (TradeEvents) and/or --onchain (OnchainEvents)")
    for flag, path in (("--input", input), ("--onchain", onchain)):
        if path is not None and not path.exists():
            fail(f"{flag} {path} does not exist")
    settings = load_settings(tier)
    from pyspark.sql import SparkSession

    from coattail.contracts import dumps
    from jobs.batchmode import (
        clean_onchain,
        clean_trades,
        detect,
        read_events,
        sorted_alerts,
        value_onchain,
        write_tables,
    )
    from jobs.framework.detector import ONCHAIN
    from jobs.framework.registry import ModuleRegistry
    from jobs.session import build_session

    detectors = ModuleRegistry(settings).detectors()
    if onchain is not None and not any(d.reads == ONCHAIN for d in detectors):
        fail(
            f"--onchain: no active module of tier {settings.tier!r} reads on-chain events (try --tier large)"
        )
    started = time.monotonic()
    owned = SparkSession.getActiveSession() is None  # reuse (and keep) a caller's session, e.g. tests
    spark = build_session(
        settings, app_name="coattail-detect", master=master or "local[2]", shuffle_partitions=4
    )
    try:
        no_trades = spark.createDataFrame([], "value string, source_ts timestamp, source_pos string")
        trades = clean_trades(read_events(spark, input) if input is not None else no_trades, settings)
        chain = None if onchain is None else clean_onchain(read_events(spark, onchain), settings)
        if chain is not None and input is not None:  # the trades price the events that carry no value
            chain = value_onchain(spark, chain, trades)
        results = detect(spark, settings, trades, detectors, onchain=chain)
    finally:
        if owned:
            spark.stop()
    alerts = sorted_alerts(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"".join(dumps(a) + b"\n" for a in alerts))
    counts = ", ".join(f"{m}: {len(r.alerts)}" for m, r in results.items())
    typer.echo(f"{len(alerts)} alert(s) -> {output} ({counts}) in {time.monotonic() - started:.1f}s")
    if tables is not None:
        rows = write_tables(tables, detectors, results)
        typer.echo(f"table rows -> {tables}/: " + ", ".join(f"{t}: {n}" for t, n in rows.items()))
