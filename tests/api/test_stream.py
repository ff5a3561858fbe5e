"""GET /alerts/stream: live delivery, filters, keep-alives and Last-Event-ID resume."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from coattail.hotstore import DynamoAlertStore
from tests.api.helpers import LiveServer, make_alert, seed

pytestmark = pytest.mark.services
WAIT = 60  # seconds; generous for a loaded 2-core machine


@dataclass
class Reader:
    """Reads an SSE response in a thread; parsed events and comments land in ``inbox``."""

    inbox: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    status: int = 0

    def next(self, kind: str = "alert") -> dict[str, Any]:
        while True:
            message = self.inbox.get(timeout=WAIT)
            if message["kind"] == kind:
                return message


@contextmanager
def open_stream(server: LiveServer, headers: dict[str, str] | None = None, **params: str) -> Iterator[Reader]:
    reader = Reader()
    connected = threading.Event()
    stop = threading.Event()

    def run() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=httpx.Timeout(WAIT, read=WAIT)) as client,
            client.stream("GET", "/alerts/stream", params=params, headers=headers or {}) as response,
        ):
            reader.status = response.status_code
            connected.set()
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith(":"):
                    reader.inbox.put({"kind": "comment", "text": line[1:].strip()})
                elif line == "":
                    if "data" in event:
                        reader.inbox.put({"kind": event.get("event", "message"), **event})
                    event = {}
                else:
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert connected.wait(WAIT), "the stream did not answer"
    try:
        yield reader
    finally:
        stop.set()  # the next keep-alive (1 s in tests) ends the reader


def test_new_alert_is_delivered_with_filters_and_keepalives(
    live: LiveServer, store: DynamoAlertStore
) -> None:
    seed(store, [make_alert(0, age=timedelta(seconds=5))])  # existed before: not "new"
    with open_stream(live) as everything, open_stream(live, symbol="ETH-USDT") as eth_only:
        assert everything.status == 200
        assert everything.next("comment")["text"] == "connected"
        btc = make_alert(1, symbol="BTC-USDT")
        eth = make_alert(2, symbol="ETH-USDT", alert_type="volume_spike")
        seed(store, [btc])
        seed(store, [eth])
        got = [json.loads(everything.next()["data"]) for _ in range(2)]
        assert sorted(a["alert_id"] for a in got) == sorted([btc.alert_id, eth.alert_id])
        assert got[0] == (btc if got[0]["alert_id"] == btc.alert_id else eth).model_dump(mode="json")
        first_eth = eth_only.next()
        assert json.loads(first_eth["data"])["alert_id"] == eth.alert_id
        assert first_eth["id"] == f"{eth.model_dump(mode='json')['detected_at']}|{eth.alert_id}"
        # A late-written alert (detected earlier than ones already sent) still streams.
        late = make_alert(3, age=timedelta(seconds=90))
        seed(store, [late])
        assert json.loads(everything.next()["data"])["alert_id"] == late.alert_id
        # Keep-alive comments flow while nothing happens (ping is 1 s in tests).
        assert everything.next("comment")["text"].startswith("ping")


def test_resume_with_last_event_id(live: LiveServer, store: DynamoAlertStore) -> None:
    now = datetime.now(UTC)
    with open_stream(live, type="whale_trade") as reader:
        reader.next("comment")
        first = make_alert(1, now=now, age=timedelta(seconds=3))
        seed(store, [first])
        received = reader.next()
        assert json.loads(received["data"])["alert_id"] == first.alert_id
    # While disconnected: two more whale alerts and one of another type.
    missed = [
        make_alert(2, now=now, age=timedelta(seconds=2)),
        make_alert(3, now=now, age=timedelta(seconds=1)),
    ]
    seed(store, [*missed, make_alert(4, now=now, alert_type="volume_spike")])
    with open_stream(live, headers={"Last-Event-ID": received["id"]}, type="whale_trade") as resumed:
        replayed = [json.loads(resumed.next()["data"])["alert_id"] for _ in range(2)]
        assert replayed == [a.alert_id for a in missed]  # in order, without the one already seen
        live_alert = make_alert(5)
        seed(store, [live_alert])
        assert json.loads(resumed.next()["data"])["alert_id"] == live_alert.alert_id


def test_bad_last_event_id_is_422(live: LiveServer) -> None:
    with live.client() as client:
        response = client.get("/alerts/stream", headers={"Last-Event-ID": "not-an-id"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Last-Event-ID:")
