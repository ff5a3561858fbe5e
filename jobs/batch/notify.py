"""Failure notifications (seed §5.1 SendAlert): a Slack-compatible webhook or SNS, chosen by config."""

from __future__ import annotations

import logging

import httpx

from coattail.errors import CoattailError
from coattail.settings import Settings

log = logging.getLogger("jobs.batch")


class NotifyError(CoattailError, RuntimeError):
    """The notification could not be sent; says where and why."""


def sns_region(topic_arn: str) -> str:
    parts = topic_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "sns":
        raise NotifyError(f"batch.sns_topic_arn {topic_arn!r} is not an SNS topic ARN (arn:aws:sns:REGION:…)")
    return parts[3]


def notify(settings: Settings, subject: str, text: str) -> str:
    """Send ``text`` on the configured channel; returns the channel name ("none" only logs)."""
    b = settings.batch
    if b.notify == "webhook":
        if not b.webhook_url:
            raise NotifyError("batch.notify is webhook but batch.webhook_url is empty")
        try:
            response = httpx.post(b.webhook_url, json={"text": f"*{subject}*\n{text}"}, timeout=10.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook {b.webhook_url} failed: {exc}") from None
    elif b.notify == "sns":
        if not b.sns_topic_arn:
            raise NotifyError("batch.notify is sns but batch.sns_topic_arn is empty")
        import boto3

        sns = boto3.client("sns", region_name=sns_region(b.sns_topic_arn))
        sns.publish(TopicArn=b.sns_topic_arn, Subject=subject[:100], Message=text)
    else:
        log.warning("%s: %s (batch.notify is none)", subject, text)
    return b.notify
