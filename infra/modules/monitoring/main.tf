# Cost safety (seed §10.3): a $25 billing alarm, delivered through the alarm topic that the batch
# workflow also uses for failures. Billing metrics exist only in us-east-1 and an alarm can only
# notify a topic in its own region, so both live there (provider 6 per-resource `region`); publishers
# elsewhere call SNS in the region named by the topic ARN.

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key, and a dedicated CMK would be the largest idle cost of the stack; messages carry alarm names and thresholds only. Pass kms_key_arn (a us-east-1 key whose policy admits CloudWatch) for SSE with a CMK.
  region            = var.billing_region
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

data "aws_iam_policy_document" "alarms" {
  statement {
    sid       = "AccountPublishAndManage"
    effect    = "Allow"
    actions   = ["sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:Publish", "sns:Subscribe"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${var.partition}:iam::${var.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarms"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  region = var.billing_region
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms.json
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  region    = var.billing_region
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Needs "Receive Billing Alerts" enabled once in the account's billing preferences.
resource "aws_cloudwatch_metric_alarm" "billing" {
  region              = var.billing_region
  alarm_name          = "${var.name}-billing-${var.billing_threshold_usd}usd"
  alarm_description   = "Estimated AWS charges this month reached ${var.billing_threshold_usd} USD (seed §10.3). Stop the workloads or check Cost Explorer."
  namespace           = "AWS/Billing"
  metric_name         = "EstimatedCharges"
  statistic           = "Maximum"
  period              = 21600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.billing_threshold_usd
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    Currency = "USD"
  }
}
