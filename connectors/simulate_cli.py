"""`coattail simulate`: seeded raw-message market simulation (file, optional Kafka, optional real time)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer

from coattail.cliutil import fail
from coattail.settings import load_settings
from connectors.simulator import simulate


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Raw-message JSONL to write")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same output")] = 1,
    minutes: Annotated[float, typer.Option(help="Simulated duration in minutes")] = 60,
    rate: Annotated[float, typer.Option(help="Events per second across all instruments")] = 20,
    start: Annotated[str | None, typer.Option(help="ISO start time (default: now - minutes)")] = None,
    truth: Annotated[Path | None, typer.Option(help="Ground-truth JSON (default: <out>.truth.json)")] = None,
    to_kafka: Annotated[bool, typer.Option("--to-kafka", help="Also normalise and produce to Kafka")] = False,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Emit at wall-clock pace, timestamps = now")
    ] = False,
    exchanges: Annotated[
        str | None,
        typer.Option(help="Comma-separated venues to simulate (default: the tier's connectors)"),
    ] = None,
    tier: Annotated[str | None, typer.Option(help="Tier whose connectors are simulated")] = None,
    moves: Annotated[
        int,
        typer.Option(
            min=0,
            help="Planted price moves per base asset (3-5 %, 20-40 min; 2 in 3 preceded by informed "
            "whale flow); each needs 75 simulated minutes",
        ),
    ] = 0,
    flow_episodes: Annotated[
        bool, typer.Option(help="Plant the background whale-flow episodes (MOD-006/MOD-007 truth)")
    ] = True,
) -> None:
    """Seeded market simulator: every venue's own raw messages plus the planted ground truth."""
    begin: datetime | None = None
    if realtime:
        begin = datetime.now(UTC)
    elif start:
        try:
            begin = datetime.fromisoformat(start)
        except ValueError:
            fail(f"--start {start!r} is not an ISO-8601 time, e.g. 2026-01-01T00:00:00Z")
        if begin.tzinfo is None:
            begin = begin.replace(tzinfo=UTC)
    else:
        begin = datetime.now(UTC) - timedelta(minutes=minutes)
    settings = load_settings(tier)
    venues = [v.strip().lower() for v in exchanges.split(",") if v.strip()] if exchanges else None
    chosen = venues or settings.active_connectors
    unknown = [v for v in chosen if v not in settings.instruments] if venues else []
    if unknown:
        fail(f"--exchanges names {', '.join(unknown)}, which have no `instruments` in config/features.yaml")
    instruments = {ex: syms for ex, syms in settings.instruments.items() if ex in chosen}
    try:
        lines, facts = simulate(
            seed=seed, minutes=minutes, rate=rate, start=begin,
            instruments=instruments, equivalences=settings.equivalences,
            flow_episodes=flow_episodes, moves=moves,
        )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    truth_path = truth or out.with_name(out.name + ".truth.json")
    truth_path.write_bytes(orjson.dumps(facts, option=orjson.OPT_INDENT_2) + b"\n")
    writer = None
    if to_kafka:
        from coattail.settings.endpoints import kafka_bootstrap
        from connectors.kafka_writer import KafkaWriter
        from connectors.metrics import Metrics

        k = settings.stream.kafka
        writer = KafkaWriter(kafka_bootstrap(settings), k.topic, k.dlq_topic, metrics=Metrics())
        writer.ensure_topics(k.partitions)
    encoded = [orjson.dumps(line) for line in lines]
    with out.open("wb") as fh:
        if realtime:
            for line, blob in zip(lines, encoded, strict=True):
                due = datetime.fromisoformat(line["received_at"]).timestamp()
                if (delay := due - time.time()) > 0:
                    time.sleep(delay)
                fh.write(blob + b"\n")
                fh.flush()
                if writer is not None:
                    _produce(writer, [blob])
        else:
            fh.write(b"\n".join(encoded) + (b"\n" if encoded else b""))
            if writer is not None:
                _produce(writer, encoded)
    if writer is not None and writer.flush(60):
        fail("some records were not delivered to Kafka within 60 s")
    predictable = sum(m["predictable"] for m in facts["moves"])
    planted = (
        f", {len(facts['moves'])} planted price moves ({predictable} predictable)" if facts["moves"] else ""
    )
    typer.echo(
        f"wrote {len(lines)} raw messages to {out} ({len(facts['whales'])} whales, "
        f"{len(facts['volume_bursts'])} volume bursts, {len(facts['spread_dislocations'])} dislocations, "
        f"{len(facts['flow_episodes'])} whale-flow episodes{planted}; "
        f"truth in {truth_path})",
        err=True,
    )


def _produce(writer: object, blobs: list[bytes]) -> None:
    from connectors.replay import replay
    from connectors.writer import StreamWriter

    assert isinstance(writer, StreamWriter)
    replay(blobs, writer, fast=True)


app = simulate_command
