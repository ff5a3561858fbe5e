output "alarm_topic_arn" {
  description = "ARN of the alarm topic (in the billing region)."
  value       = aws_sns_topic.alarms.arn
}

output "billing_alarm_name" {
  description = "Name of the billing alarm."
  value       = aws_cloudwatch_metric_alarm.billing.alarm_name
}
