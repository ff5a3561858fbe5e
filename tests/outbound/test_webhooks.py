"""Webhooks against a real local HTTP server that fails now and then, and the dispatcher end to end
(alerts published to the suite's Kafka broker → dispatcher → the server), restarts included."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from coattail.contracts import Alert
from coattail.retry import Backoff
from coattail.settings import ConfigError
from coattail.settings.outbound import AlertsOutSettings, WebhookTargetSettings
from jobs.outbound.dispatcher import WebhookDispatcher
from jobs.outbound.publisher import AlertPublisher
from jobs.outbound.webhooks import (
    FileDeadLetter,
    TokenBucket,
    WebhookSender,
    matches,
    retry_after_seconds,
    slack_body,
)
from tests.outbound.conftest import MakeSettings, make_alert, mixed_alerts
from tests.outbound.server import SECRET_PATH, Answer, WebhookReceiver
from tests.outbound.test_publisher import read_topic

FAST = Backoff(initial=0.05, factor=2.0, maximum=0.2, jitter=0.5)
REPO = Path(__file__).resolve().parents[2]


def out_settings(*targets: dict[str, Any], **extra: Any) -> AlertsOutSettings:
    return AlertsOutSettings.model_validate({"enabled": True, "webhooks": list(targets), **extra})


# -- rules, bodies, limits (no servers) ------------------------------------------------------------
def test_rules_match_type_symbol_and_minimum_severity() -> None:
    target = WebhookTargetSettings.model_validate(
        {
            "name": "desk",
            "url": "https://hooks.example.com/x",
            "alert_types": ["whale_trade"],
            "symbols": ["BTC-USDT"],
            "min_severity": "high",
        }
    )
    assert matches(target, make_alert(1, severity="high"))
    assert matches(target, make_alert(2, severity="critical"))
    assert not matches(target, make_alert(3, severity="medium"))
    assert not matches(target, make_alert(4, severity="high", symbol="ETH-USDT"))
    assert not matches(target, make_alert(5, severity="high", alert_type="volume_spike"))
    everything = WebhookTargetSettings.model_validate({"name": "all", "url": "http://127.0.0.1:1/"})
    assert all(matches(everything, a) for a in mixed_alerts(12))


def test_slack_body_carries_message_severity_symbol_module_and_link() -> None:
    alert = make_alert(7, severity="critical", message="whale <!channel> bought 3 BTC & more")
    body = slack_body(alert, "https://alerts.example.com")
    assert set(body) == {"text", "blocks"}
    assert "CRITICAL" in body["text"]
    blob = orjson.dumps(body["blocks"]).decode()
    assert f"<https://alerts.example.com/alerts/{alert.alert_id}|" in blob
    assert "&lt;!channel&gt;" in blob  # no mass ping from an alert's text
    assert "<!channel>" not in blob
    for needle in ("CRITICAL", "BTC-USDT", "MOD-002", "whale_trade"):
        assert needle in blob
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert "/alerts/" not in orjson.dumps(slack_body(alert, "")).decode()  # no base URL: no link


def test_retry_after_seconds_and_http_dates() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("100000") == 60.0  # capped
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    later = retry_after_seconds("Wed, 21 Oct 2015 07:28:05 GMT")
    assert later == 0.0  # a date in the past: retry now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(120, 3, clock=lambda: now[0], sleep=sleep)  # 2 per second, bursts of 3
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.5)
    assert bucket.acquire() == pytest.approx(0.5)
    now[0] += 10  # idle: the bucket refills to the burst, not beyond
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.5)


def test_webhook_config_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="exactly one of url or url_env"):
        WebhookTargetSettings.model_validate({"name": "x"})
    with pytest.raises(ValueError, match="two webhooks are named 'x'"):
        out_settings({"name": "x", "url": "http://a.example"}, {"name": "x", "url": "http://b.example"})
    with pytest.raises(ValueError, match="min_severity"):
        WebhookTargetSettings.model_validate({"name": "x", "url": "http://a.example", "min_severity": "huge"})
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE") as missing:
        WebhookSender(
            out_settings({"name": "x", "url_env": "NOT_SET_ANYWHERE"}), FileDeadLetter(Path("/dev/null"))
        )
    assert "\n" not in str(missing.value)


# -- delivery against a real HTTP server -----------------------------------------------------------
def flaky_plan(seed: int) -> tuple[Any, Counter[str]]:
    """Seeded failures: the first requests go through every kind once, then about a third fail."""
    rng = random.Random(seed)
    scripted = [
        Answer.status(500),
        Answer.status(429, retry_after="1"),
        Answer.slow(1.2),
        Answer.reset(),
        Answer.status(503),
    ]
    kinds: Counter[str] = Counter()
    last_failed: dict[str, int] = {}

    def plan(n: int, alert_id: str) -> Answer:
        if n < len(scripted) * 2 and n % 2 == 0:
            answer = scripted[n // 2]
        elif last_failed.get(alert_id, 0) >= 3:
            answer = Answer.ok()  # never more than 3 failures in a row: max_attempts (8) suffices
        else:
            roll = rng.random()
            answer = (
                Answer.status(500)
                if roll < 0.12
                else Answer.reset()
                if roll < 0.2
                else Answer.status(429, retry_after="0.2")
                if roll < 0.26
                else Answer.slow(1.2)
                if roll < 0.3
                else Answer.ok()
            )
        last_failed[alert_id] = 0 if answer.kind == "ok" else last_failed.get(alert_id, 0) + 1
        kinds[answer.kind if answer.kind != "status" else str(answer.code)] += 1
        return answer

    return plan, kinds


@pytest.mark.services
def test_every_matching_alert_arrives_through_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plan, kinds = flaky_plan(seed=20261201)
    alerts = mixed_alerts(36)
    with WebhookReceiver(plan) as hook:
        rule = {
            "name": "desk",
            "url_env": "DESK_HOOK_URL",
            "alert_types": ["whale_trade", "volume_spike"],
            "symbols": ["BTC-USDT", "ETH-USDT"],
            "min_severity": "medium",
            "rate_per_minute": 6000,
            "burst": 50,
            "max_attempts": 8,
            "timeout_seconds": 0.5,
        }
        dead = FileDeadLetter(tmp_path / "dead.jsonl")
        sender = WebhookSender(out_settings(rule), dead, env={"DESK_HOOK_URL": hook.url}, backoff=FAST)
        try:
            for alert in alerts:
                sender.send(alert)
        finally:
            sender.close()
        requests = list(hook.requests)

    wanted = {
        a.alert_id
        for a in alerts
        if a.alert_type in ("whale_trade", "volume_spike")
        and a.symbol in ("BTC-USDT", "ETH-USDT")
        and a.severity != "low"
    }
    assert 6 <= len(wanted) < len(alerts)  # the rules keep some and drop others
    accepted = [r.alert_id for r in requests if r.answer.accepted]
    assert set(accepted) == wanted  # none lost, none that does not match
    assert {r.alert_id for r in requests} == wanted  # non-matching alerts were never even sent
    # The only duplicates: a slow 200 past the client's timeout (the server had it, the client retried).
    assert len(accepted) - len(wanted) <= kinds["slow"]
    for kind in ("500", "429", "slow", "reset", "503"):
        assert kinds[kind] >= 1, kind
    # The 429 said "Retry-After: 1": the same alert came back no sooner.
    first_429 = next(
        i for i, r in enumerate(requests) if r.answer.code == 429 and r.answer.retry_after == "1"
    )
    again = next(r for r in requests[first_429 + 1 :] if r.alert_id == requests[first_429].alert_id)
    assert again.received_at - requests[first_429].received_at >= 0.95
    assert not (tmp_path / "dead.jsonl").exists()
    assert SECRET_PATH not in caplog.text  # the URL is a credential: host only in the logs
    assert "127.0.0.1" in caplog.text  # ... and the retries were logged


@pytest.mark.services
def test_rate_limit_holds_at_the_server() -> None:
    rate_per_minute, burst = 300, 3  # 5 per second after a burst of 3
    with WebhookReceiver() as hook:
        rule = {"name": "slow-desk", "url": hook.url, "rate_per_minute": rate_per_minute, "burst": burst}
        sender = WebhookSender(out_settings(rule), FileDeadLetter(Path("/dev/null")), backoff=FAST)
        try:
            for alert in mixed_alerts(13):
                sender.send(alert)
        finally:
            sender.close()
        times = [r.received_at for r in hook.requests]
    assert len(times) == 13
    rate = rate_per_minute / 60
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            # requests i..j inclusive fit in burst + rate × elapsed (10 ms for clocks and scheduling)
            assert j - i + 1 <= burst + rate * (times[j] - times[i] + 0.01), (i, j)
    assert times[-1] - times[0] < (13 - burst) / rate + 1.0  # and it is the limit, not a slow server


@pytest.mark.services
def test_a_target_that_answers_400_dead_letters_with_the_reason(tmp_path: Path) -> None:
    refuse = Answer.status(400, body="invalid_payload: no text")
    with WebhookReceiver(lambda _n, _id: refuse) as hook, WebhookReceiver() as good:
        rules: list[dict[str, Any]] = [
            {"name": "broken", "url": hook.url, "max_attempts": 5},
            {"name": "fine", "url": good.url},
        ]
        dead = FileDeadLetter(tmp_path / "state" / "dead.jsonl")
        sender = WebhookSender(out_settings(*rules), dead, backoff=FAST)
        alert = make_alert(1, severity="high")
        try:
            outcomes = {o.target: o for o in sender.send(alert)}
        finally:
            sender.close()
        assert len(hook.requests) == 1  # a 4xx other than 429 is not retried
        assert good.accepted_ids() == [alert.alert_id]  # the other target is not held up
    assert outcomes["fine"].delivered
    assert not outcomes["broken"].delivered
    lines = (tmp_path / "state" / "dead.jsonl").read_bytes().splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["target"] == "broken"
    assert record["alert"]["alert_id"] == alert.alert_id
    assert "HTTP 400" in record["reason"]
    assert "invalid_payload" in record["reason"]
    assert record["host"] == f"127.0.0.1:{hook.port}"
    assert SECRET_PATH not in lines[0].decode()


@pytest.mark.services
def test_a_target_that_keeps_failing_dead_letters_after_max_attempts(tmp_path: Path) -> None:
    with WebhookReceiver(lambda _n, _id: Answer.status(502)) as hook:
        dead = FileDeadLetter(tmp_path / "dead.jsonl")
        sender = WebhookSender(
            out_settings({"name": "down", "url": hook.url, "max_attempts": 3}), dead, backoff=FAST
        )
        try:
            (outcome,) = sender.send(make_alert(2))
        finally:
            sender.close()
        assert len(hook.requests) == 3
    assert not outcome.delivered
    assert outcome.attempts == 3
    record = orjson.loads((tmp_path / "dead.jsonl").read_bytes())
    assert "3 attempt(s)" in record["reason"]
    assert "HTTP 502" in record["reason"]


# -- the dispatcher, end to end --------------------------------------------------------------------
@pytest.fixture
def dispatch_settings(
    outbound_settings: MakeSettings, kafka_bootstrap: str, dynamodb_endpoint: str, aws_local_env: None
) -> MakeSettings:
    def make(**overrides: Any) -> Any:
        return outbound_settings(
            **{
                "stream.kafka.bootstrap_servers": kafka_bootstrap,
                "hot_store.endpoint_url": dynamodb_endpoint,
                **overrides,
            }
        )

    return make


class Running:
    """A dispatcher in a thread, stopped like SIGTERM stops the CLI (the stop event)."""

    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self.dispatcher = dispatcher
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            self.dispatcher.run(self.stop_event)
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        self.dispatcher.close()
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


@pytest.mark.services
def test_dispatcher_delivers_published_alerts_and_resumes_after_a_restart(
    dispatch_settings: MakeSettings, kafka_bootstrap: str
) -> None:
    with WebhookReceiver() as hook, WebhookReceiver(lambda _n, _id: Answer.status(404)) as gone:
        webhooks = [
            {"name": "desk", "url": hook.url, "rate_per_minute": 600, "burst": 1},  # ~10 per second
            {"name": "gone", "url": gone.url, "alert_types": ["spread_divergence"], "min_severity": "high"},
        ]
        settings = dispatch_settings(**{"alerts_out.webhooks": webhooks})
        first, second = mixed_alerts(15), mixed_alerts(10, start=100)
        everything = first + second
        expected_gone = [
            a.alert_id for a in everything if a.alert_type == "spread_divergence" and a.severity == "high"
        ]
        publisher = AlertPublisher(settings)
        try:
            publisher.publish(first)
            running = Running(WebhookDispatcher(settings))
            deadline = time.monotonic() + 30
            while len(set(hook.accepted_ids())) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            running.stop()  # mid-way: some of the first batch are not delivered yet
            assert 5 <= len(set(hook.accepted_ids())) < len(first)
            publisher.publish(second + first[:4])  # more alerts, and a replay the markers absorb
            producer = Producer({"bootstrap.servers": kafka_bootstrap})
            producer.produce(settings.alerts_out.topic, b"{not json", b"junk")
            assert producer.flush(10) == 0
            running = Running(WebhookDispatcher(settings))  # same group: resumes at the committed offsets
            try:
                assert hook.wait_for([a.alert_id for a in everything], timeout=60)
                # the junk record may sit in a partition read last: wait for its dead letter too
                dlq = settings.alerts_out.dead_letter_topic
                dead = read_topic(kafka_bootstrap, dlq, len(expected_gone) + 1)
            finally:
                running.stop()
        finally:
            publisher.close()
        received = hook.accepted_ids()
        gone_ids = [r.alert_id for r in gone.requests]

    assert sorted(received) == sorted(a.alert_id for a in everything)  # nothing lost, nothing twice
    assert sorted(gone_ids) == sorted(expected_gone)  # a 404 once each: not retried
    reasons = {(m.key().decode(), orjson.loads(m.value())["reason"].split(":")[0]) for m in dead}
    assert reasons == {(i, "rejected") for i in expected_gone} | {("junk", "not an Alert")}


# -- the CLI ---------------------------------------------------------------------------------------
def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COATTAIL_")}
    return subprocess.run(
        [sys.executable, "-m", "coattail", "alerts", "dispatch", "--max-seconds", "5"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


@pytest.mark.parametrize(
    ("webhooks", "says"),
    [
        (
            '[{name: a, url: "http://x.example"}, {name: a, url: "http://y.example"}]',
            "two webhooks are named",
        ),
        ('[{name: a, url: "http://x.example", min_severity: huge}]', "min_severity"),
        ("[{name: a}]", "exactly one of url or url_env"),
        ("[{name: a, url_env: NO_SUCH_HOOK_VAR}]", "NO_SUCH_HOOK_VAR"),
        ('[{name: a, url: "http://x.example", alert_types: [whale_trades]}]', "unknown alert type"),
    ],
)
def test_cli_with_a_bad_webhook_config_exits_with_one_line(webhooks: str, says: str, tmp_path: Path) -> None:
    result = run_cli(
        {
            "COATTAIL_STATE_DIR": str(tmp_path),
            "COATTAIL_ALERTS_OUT__ENABLED": "true",
            "COATTAIL_ALERTS_OUT__WEBHOOKS": webhooks,
            "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
        }
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]


def test_cli_on_kinesis_says_it_needs_kafka(tmp_path: Path) -> None:
    result = run_cli(
        {
            "COATTAIL_STATE_DIR": str(tmp_path),
            "COATTAIL_STREAM__BACKEND": "kinesis",
            "COATTAIL_ALERTS_OUT__ENABLED": "true",
            "COATTAIL_ALERTS_OUT__WEBHOOKS": '[{name: a, url: "http://x.example"}]',
        }
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "needs the Kafka stream backend" in result.stderr


@pytest.mark.services
def test_cli_dispatches_until_stopped(
    dispatch_settings: MakeSettings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """`coattail alerts dispatch` as a process: delivers, then stops cleanly (exit 0) on SIGTERM."""
    with WebhookReceiver() as hook:
        topic = f"alerts-cli-{uuid.uuid4().hex[:8]}"
        settings = dispatch_settings(**{"alerts_out.topic": topic})
        alerts = mixed_alerts(3)
        publisher = AlertPublisher(settings)
        try:
            publisher.publish(alerts)
        finally:
            publisher.close()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("COATTAIL_")}
        env = {
            **clean,
            "COATTAIL_STATE_DIR": str(tmp_path),
            "COATTAIL_ALERTS_OUT__ENABLED": "true",
            "COATTAIL_ALERTS_OUT__TOPIC": topic,
            "COATTAIL_ALERTS_OUT__CONSUMER_GROUP": f"g-{topic}",
            "COATTAIL_ALERTS_OUT__DEAD_LETTER_TOPIC": f"dlq-{topic}",
            "COATTAIL_ALERTS_OUT__WEBHOOKS": "[{name: desk, url_env: DESK_URL, format: json}]",
            "DESK_URL": hook.url,
            "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "coattail", "alerts", "dispatch"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert hook.wait_for([a.alert_id for a in alerts], timeout=60)
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert SECRET_PATH not in stderr
        bodies = {r.alert_id: r.body for r in hook.accepted()}
    assert {i: Alert.model_validate(b) for i, b in bodies.items()} == {a.alert_id: a for a in alerts}
