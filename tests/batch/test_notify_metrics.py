"""Notifications (webhook to a local HTTP server, SNS against moto), run metrics and the alert diff."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from jobs.batch.diff import diff_alerts
from jobs.batch.metrics import publish, textfile_path
from jobs.batch.notify import NotifyError, notify, sns_region
from tests.batch.conftest import LoadSettings
from tests.batch.fakes import Recorder, serve_recorder

pytestmark = [pytest.mark.unit, pytest.mark.services]


def test_webhook_posts_slack_json(make_settings: LoadSettings) -> None:
    recorder = Recorder()
    with serve_recorder(recorder) as url:
        settings = make_settings(**{"batch.notify": "webhook", "batch.webhook_url": url})
        assert notify(settings, "batch failed", "quality 80%") == "webhook"
    assert recorder.bodies == [{"text": "*batch failed*\nquality 80%"}]


def test_webhook_errors_are_one_sentence(make_settings: LoadSettings) -> None:
    settings = make_settings(**{"batch.notify": "webhook", "batch.webhook_url": "http://127.0.0.1:9/x"})
    with pytest.raises(NotifyError, match=r"webhook http://127\.0\.0\.1:9/x failed"):
        notify(settings, "s", "t")


@pytest.mark.usefixtures("aws_local_env")
def test_sns_publishes_in_the_topic_region(make_settings: LoadSettings) -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="eu-central-1")
        arn = sns.create_topic(Name="coattail-batch")["TopicArn"]
        sqs = boto3.client("sqs", region_name="eu-central-1")
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        settings = make_settings(**{"batch.notify": "sns", "batch.sns_topic_arn": arn})
        assert notify(settings, "batch failed", "quality 80%") == "sns"
        [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
        body = json.loads(message["Body"])
        assert body["Subject"] == "batch failed"
        assert body["Message"] == "quality 80%"
    assert sns_region(arn) == "eu-central-1"
    with pytest.raises(NotifyError, match="not an SNS topic ARN"):
        sns_region("coattail-batch")


def test_textfile_keeps_the_last_success_across_a_failure(make_settings: LoadSettings) -> None:
    settings = make_settings()
    publish(settings, "daily", succeeded=True, step_seconds={"backfill": 1.5}, step_attempts={"backfill": 1},
            quality_score=100.0)  # fmt: skip
    first = textfile_path(settings).read_text()
    assert 'coattail_batch_run_success{workflow="daily"} 1.0' in first
    publish(
        settings, "daily", succeeded=False, step_seconds={}, step_attempts={"quality": 1}, quality_score=50.0
    )
    second = textfile_path(settings).read_text()
    assert 'coattail_batch_run_failure{workflow="daily"} 1.0' in second
    assert 'coattail_batch_quality_score_pct{workflow="daily"} 50.0' in second
    success_line = next(line for line in first.splitlines() if line.startswith("coattail_batch_last_success"))
    assert success_line in second


def _alert(alert_id: str, alert_type: str = "whale_trade", severity: str = "medium") -> dict[str, object]:
    return {
        "alert_id": alert_id,
        "alert_type": alert_type,
        "module_id": "MOD-002",
        "symbol": "BTC-USDT",
        "exchange": "binance",
        "severity": severity,
        "detected_at": datetime(2026, 1, 5, tzinfo=UTC),
        "message": "m",
        "details": '{"a": 1, "b": 2}',
    }


def test_diff_counts_added_removed_and_changed_per_type() -> None:
    current = [_alert("a"), _alert("b"), _alert("c"), _alert("v1", "volume_spike")]
    later = [_alert("a"), {**_alert("b"), "details": '{"b": 2, "a": 1}'}, _alert("c", severity="high")]
    later += [_alert("d"), _alert("v2", "volume_spike")]
    diff = diff_alerts(current, later)
    assert diff.counts() == {
        "volume_spike": {"added": 1, "removed": 1, "changed": 0, "unchanged": 0},
        "whale_trade": {"added": 1, "removed": 0, "changed": 1, "unchanged": 2},
    }
    assert diff.by_type["whale_trade"].changed == ["c"]
    assert "whale_trade" in diff.render()
    assert diff_alerts(current, current).is_empty
