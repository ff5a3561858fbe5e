"""Print alerts as they land (used by `make demo`).

With ``--kafka BOOTSTRAP --topic T`` it reads the ``alerts`` topic the pipeline publishes every new
alert to exactly once, so every alert shows, however old its evidence (the demo's six hours of wallet
history); otherwise the API's Server-Sent Events stream plus a poll of the newest alerts.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time

import httpx
from rich.console import Console

# The stream sends a keep-alive comment every few seconds, so a long read timeout only catches a dead API.
READ_TIMEOUT = httpx.Timeout(10.0, read=120.0)
SEVERITY_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}


_LOCK = threading.Lock()
POLL_SECONDS = 5.0


def _show(console: Console, alert: dict[str, str], seen: set[str]) -> None:
    with _LOCK:
        if alert["alert_id"] in seen:  # the stream replays its look-back window; the poller overlaps it
            return
        seen.add(alert["alert_id"])
    style = SEVERITY_STYLE.get(alert["severity"], "")
    console.print(
        f"[{style}]{alert['severity']:>8}[/] {alert['detected_at']} "
        f"{alert['alert_type']:<19} {alert['symbol']:<9} {alert['message']}",
        overflow="ellipsis",
        no_wrap=True,
    )


def watch(base_url: str) -> None:
    console = Console()
    seen: set[str] = set()
    last_id = ""
    # First what the last day already holds (oldest first), then the live stream.
    try:
        recent = httpx.get(f"{base_url}/alerts", params={"limit": 200}, timeout=30).json()["items"]
    except httpx.HTTPError as exc:
        sys.exit(f"error: the alert API at {base_url} does not answer ({exc}); start it with `coattail api`")
    for alert in reversed(recent):
        _show(console, alert, seen)
    # Alerts about the replayed history carry their evidence's (old) time, older than the stream's
    # look-back: a poll of the newest alerts shows them too, whenever the pipeline gets to them.
    threading.Thread(target=_poll, args=(base_url, console, seen), daemon=True).start()
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            url = f"{base_url}/alerts/stream"
            with httpx.stream("GET", url, headers=headers, timeout=READ_TIMEOUT) as resp:
                resp.raise_for_status()
                event: dict[str, str] = {}
                for line in resp.iter_lines():
                    if line:
                        field, _, value = line.partition(":")
                        event[field] = value.lstrip()
                        continue
                    if event.get("event") == "alert" and "data" in event:
                        last_id = event.get("id", last_id)
                        _show(console, json.loads(event["data"]), seen)
                    event = {}
        except httpx.HTTPError as exc:  # the API restarting: reconnect and resume after the last id
            console.print(f"[dim]alert stream interrupted ({exc}); reconnecting[/]")
            time.sleep(2)


def _poll(base_url: str, console: Console, seen: set[str]) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            items = httpx.get(f"{base_url}/alerts", params={"limit": 200}, timeout=30).json()["items"]
            for alert in reversed(items):
                _show(console, alert, seen)


def watch_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException

    console = Console()
    seen: set[str] = set()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"watch-alerts-{time.time_ns()}",  # its own group: every alert from the start
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 2000,  # notice the topic soon after it is created
        }
    )
    consumer.subscribe([topic])
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                # The pipeline creates the topic with its first alert: until then, wait.
                if message.error().retriable() or message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise KafkaException(message.error())
            _show(console, json.loads(message.value()), seen)
    finally:
        consumer.close()


def main(argv: list[str]) -> None:
    if "--kafka" in argv:
        args = dict(zip(argv[::2], argv[1::2], strict=False))
        watch_topic(args["--kafka"], args["--topic"])
    else:
        watch(argv[0] if argv else "http://127.0.0.1:8000")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
