"""Webhooks: configured rules pick the alerts each target wants; each one is POSTed, retried, rate
limited, and dead-lettered with the reason when it cannot be delivered.

Rules (``alerts_out.webhooks[*]``): ``alert_types``, ``symbols`` (empty: any) and ``min_severity``
must all match. Body: Slack-compatible by default (``{"text": ..., "blocks": [...]}``, Block Kit:
header ≤ 150 characters, section text ≤ 3000, ≤ 10 fields of ≤ 2000; ``&``, ``<``, ``>`` escaped so
an alert's text cannot ping ``<!channel>``), or the alert's own JSON (``format: json``, the API's form).

Retries (coattail.retry, exponential backoff with jitter): connection errors, timeouts, 429 (waiting
the server's ``Retry-After``, capped at :data:`MAX_RETRY_AFTER_SECONDS`) and 5xx, up to the target's
``max_attempts``. Any other 4xx is final at once: the request itself is wrong, and sending it again
cannot fix it. Every attempt first takes a token of the target's bucket (``rate_per_minute``,
``burst``), so retries count against the rate limit too.

Dead letters: a delivery that failed for good is written with the reason — to the Kafka topic
``alerts_out.dead_letter_topic`` (key = alert_id), or, with the Kinesis backend, appended as one JSON
line to ``<state dir>/outbound/webhook-dead-letter.jsonl`` (the state folder is the pod's writable
volume). Record: ``{"alert": {...}, "target": name, "host": host, "reason": ..., "attempts": n,
"failed_at": ...}``.

A target's URL is a credential for Slack and most chat tools: it is never logged, only its host.
httpx's own INFO request log line names the full URL, so its logger is kept at WARNING.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from confluent_kafka import KafkaError, Message, Producer

from coattail.contracts import Alert
from coattail.contracts.alert import SEVERITY_ORDER
from coattail.contracts.types import format_utc
from coattail.errors import CoattailError
from coattail.hotstore.codec import alert_to_item, item_to_json
from coattail.retry import Backoff, retry
from coattail.settings import ConfigError, Settings
from coattail.settings.endpoints import kafka_bootstrap
from coattail.settings.outbound import AlertsOutSettings, WebhookTargetSettings, check_webhook_url

log = logging.getLogger("jobs.outbound")
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}
MAX_RETRY_AFTER_SECONDS = 60.0  # a longer Retry-After would stall every other alert of the target
DEFAULT_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0, jitter=0.5)
DEAD_LETTER_FILE = ("outbound", "webhook-dead-letter.jsonl")
USER_AGENT = "coattail-webhooks/1"
for _chatty in ("httpx", "httpcore"):  # their INFO/DEBUG lines carry the full URL (a secret)
    logging.getLogger(_chatty).setLevel(logging.WARNING)


class DeliveryError(CoattailError):
    """A delivery that failed for good; the message (one line) is the dead letter's reason."""


class RetryableStatusError(Exception):
    """429 or 5xx: the target may accept the alert later."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class RejectedError(Exception):
    """Any other 4xx: the target refuses this request; sending it again cannot help."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}" + (f": {body}" if body else ""))
        self.status = status


# -- rules and bodies ------------------------------------------------------------------------------
def host_of(url: str) -> str:
    """What logs and dead letters may say about a URL: its host (and port), never path or query."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def matches(target: WebhookTargetSettings, alert: Alert) -> bool:
    """Every rule of the target holds for the alert (an empty list is no restriction)."""
    return (
        (not target.alert_types or alert.alert_type in target.alert_types)
        and (not target.symbols or alert.symbol in target.symbols)
        and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[target.min_severity]
    )


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert as the API returns it."""
    return item_to_json(alert_to_item(alert))


def alert_link(alert: Alert, api_base_url: str) -> str | None:
    return f"{api_base_url.rstrip('/')}/alerts/{alert.alert_id}" if api_base_url else None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_body(alert: Alert, api_base_url: str = "") -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications, fallback) plus Block Kit blocks."""
    severity = alert.severity.upper()
    link = alert_link(alert, api_base_url)
    message = _escape(alert.message)
    section = f"{message}\n<{link}|View alert {alert.alert_id}>" if link else message
    fields = [
        ("Severity", severity),
        ("Symbol", alert.symbol),
        ("Module", alert.module_id),
        ("Type", alert.alert_type),
        ("Exchange", alert.exchange or "-"),
        ("Detected at", format_utc(alert.detected_at)),
    ]
    return {
        "text": _cut(f"[{severity}] {alert.alert_type} {alert.symbol}: {alert.message}", 3000),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"{severity} {alert.alert_type} · {alert.symbol}", 150),
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(section, 3000)}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_escape(value)}", 2000)}
                    for name, value in fields
                ],
            },
        ],
    }


def render(target: WebhookTargetSettings, alert: Alert, api_base_url: str = "") -> bytes:
    body = alert_json(alert) if target.format == "json" else slack_body(alert, api_base_url)
    return orjson.dumps(body)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


# -- rate limit ------------------------------------------------------------------------------------
class TokenBucket:
    """``burst`` requests at once, then ``rate_per_minute`` on average; :meth:`acquire` waits its turn.

    Thread-safe: the lock is held only to book a token, the wait happens outside it, so callers are
    served in the order they booked.
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate_per_minute / 60.0  # tokens per second
        self.burst = float(burst)
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting until it is there; returns how long it waited."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1  # may go negative: a booked future token, paid for by waiting
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


# -- dead letters ----------------------------------------------------------------------------------
class DeadLetter(Protocol):
    """Where failed deliveries go; :meth:`write` returns once the record is durable, or raises."""

    @property
    def where(self) -> str: ...

    def write(self, alert_id: str, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class KafkaDeadLetter:
    """The dead-letter topic (key = alert_id); each write waits for the broker's acknowledgement."""

    def __init__(self, bootstrap: str, topic: str, *, timeout: float = 30) -> None:
        self.topic = topic
        self.timeout = timeout
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "logger": log}
        )

    @property
    def where(self) -> str:
        return f"kafka:{self.topic}"

    def write(self, alert_id: str, record: Mapping[str, Any]) -> None:
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err.str())

        self._producer.produce(self.topic, orjson.dumps(record), alert_id, on_delivery=on_delivery)
        left = self._producer.flush(self.timeout)
        if left or errors:
            raise DeliveryError(
                f"dead-letter topic {self.topic!r}: not acknowledged ({errors[0] if errors else 'timeout'})"
            )

    def close(self) -> None:
        self._producer.flush(5)


class FileDeadLetter:
    """One JSON line per failed delivery, appended and fsynced (the Kinesis backend's dead letters)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return str(self.path)

    def write(self, alert_id: str, record: Mapping[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())

    def close(self) -> None:
        """Nothing held open."""


def dead_letter_for(settings: Settings) -> DeadLetter:
    if settings.stream.backend == "kafka":
        return KafkaDeadLetter(kafka_bootstrap(settings), settings.alerts_out.dead_letter_topic)
    return FileDeadLetter(settings.state_path(*DEAD_LETTER_FILE))


# -- delivery --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """One alert at one target: delivered, or dead-lettered with ``reason``."""

    target: str
    alert_id: str
    delivered: bool
    attempts: int
    reason: str = ""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | RetryableStatusError)


def _wait_hint(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, RetryableStatusError) else None


def _describe(exc: BaseException) -> str:
    """A cause without the URL: httpx's messages are short, but a status error would name it."""
    if isinstance(exc, RetryableStatusError | RejectedError):
        return str(exc)
    return f"{type(exc).__name__}" + (f": {str(exc).splitlines()[0][:120]}" if str(exc) else "")


class WebhookTarget:
    """A configured target with its resolved URL and its own token bucket."""

    def __init__(self, spec: WebhookTargetSettings, url: str) -> None:
        self.spec = spec
        self.url = url
        self.host = host_of(url)
        self.bucket = TokenBucket(spec.rate_per_minute, spec.burst)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def deadline_seconds(self) -> float:
        """A bound the attempts reach first: each is at most a timeout plus the longest wait."""
        return self.spec.max_attempts * (self.spec.timeout_seconds + MAX_RETRY_AFTER_SECONDS)

    def deliver(
        self, client: httpx.Client, alert: Alert, api_base_url: str = "", backoff: Backoff = DEFAULT_BACKOFF
    ) -> Outcome:
        """POST the alert until it is accepted (2xx), refused (4xx but 429), or attempts run out."""
        body = render(self.spec, alert, api_base_url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Coattail-Alert-Id": alert.alert_id,
        }
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            self.bucket.acquire()
            attempts += 1
            response = client.post(self.url, content=body, headers=headers, timeout=self.spec.timeout_seconds)
            if response.is_success:
                return
            status = response.status_code
            if status == 429 or status >= 500:
                raise RetryableStatusError(status, retry_after_seconds(response.headers.get("Retry-After")))
            raise RejectedError(status, _cut(response.text.strip().replace("\n", " "), 200))

        try:
            retry(
                attempt,
                what=f"webhook {self.name!r} ({self.host}): alert {alert.alert_id}",
                deadline_seconds=self.deadline_seconds,
                max_attempts=self.spec.max_attempts,
                retryable=_retryable,
                backoff=backoff,
                wait_hint=_wait_hint,
                describe=_describe,
                give_up=DeliveryError,
                logger=log,
            )
        except RejectedError as exc:
            return Outcome(self.name, alert.alert_id, False, attempts, f"rejected: {exc}")
        except DeliveryError as exc:
            return Outcome(self.name, alert.alert_id, False, attempts, str(exc))
        return Outcome(self.name, alert.alert_id, True, attempts)


def resolve_url(spec: WebhookTargetSettings, env: Mapping[str, str]) -> str:
    """The target's URL, from ``url`` or the environment variable ``url_env`` (a mounted Secret)."""
    if spec.url:
        return spec.url
    url = env.get(spec.url_env, "").strip()
    if not url:
        raise ConfigError(
            f"webhook {spec.name!r}: environment variable {spec.url_env} (url_env) is not set; "
            "mount the Secret holding the URL or set the variable"
        )
    try:
        return check_webhook_url(url)
    except ValueError as exc:
        raise ConfigError(f"webhook {spec.name!r}: the URL in {spec.url_env} {exc}") from None


def check_alert_types(out: AlertsOutSettings, known: Sequence[str]) -> None:
    """A rule naming an alert type no module emits would silently never match: refuse it."""
    for spec in out.webhooks:
        unknown = [t for t in spec.alert_types if t not in known]
        if unknown:
            raise ConfigError(
                f"webhook {spec.name!r} names unknown alert type(s) {', '.join(unknown)}; "
                f"known: {', '.join(known)}"
            )


class WebhookSender:
    """Every configured target; :meth:`send` delivers one alert to each matching target at once
    (one thread per target, so a slow target does not hold up the others) and dead-letters failures."""

    def __init__(
        self,
        out: AlertsOutSettings,
        dead_letter: DeadLetter,
        *,
        env: Mapping[str, str] | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        env = os.environ if env is None else env
        self.api_base_url = out.api_base_url
        self.targets = [WebhookTarget(spec, resolve_url(spec, env)) for spec in out.webhooks]
        self.dead_letter = dead_letter
        self.backoff = backoff
        self.client = httpx.Client(
            follow_redirects=False, limits=httpx.Limits(max_connections=4 * max(1, len(self.targets)))
        )
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.targets)), thread_name_prefix="webhook")
        self.delivered = 0
        self.dead_lettered = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, backoff: Backoff = DEFAULT_BACKOFF) -> WebhookSender:
        known = sorted({t for spec in settings.modules.values() for t in spec.alert_types})
        check_alert_types(settings.alerts_out, known)
        return cls(settings.alerts_out, dead_letter_for(settings), backoff=backoff)

    def matching(self, alert: Alert) -> list[WebhookTarget]:
        return [t for t in self.targets if matches(t.spec, alert)]

    def send(self, alert: Alert) -> list[Outcome]:
        """Deliver to every matching target; returns once each is delivered or dead-lettered."""
        targets = self.matching(alert)
        outcomes = list(
            self._pool.map(lambda t: t.deliver(self.client, alert, self.api_base_url, self.backoff), targets)
        )
        for target, outcome in zip(targets, outcomes, strict=True):
            if outcome.delivered:
                self.delivered += 1
            else:
                self._dead_letter(target, alert, outcome)
        return outcomes

    def _dead_letter(self, target: WebhookTarget, alert: Alert, outcome: Outcome) -> None:
        record = {
            "alert": alert_json(alert),
            "target": target.name,
            "host": target.host,
            "reason": outcome.reason,
            "attempts": outcome.attempts,
            "failed_at": format_utc(datetime.now(UTC)),
        }
        self.dead_letter.write(alert.alert_id, record)
        self.dead_lettered += 1
        log.error(
            "webhook %r (%s): alert %s dead-lettered to %s: %s",
            target.name,
            target.host,
            alert.alert_id,
            self.dead_letter.where,
            outcome.reason,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()
        self.dead_letter.close()
