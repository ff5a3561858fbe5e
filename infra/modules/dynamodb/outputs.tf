output "table_name" {
  description = "Name of the alerts table."
  value       = aws_dynamodb_table.alerts.name
}

output "table_arn" {
  description = "ARN of the alerts table (its indexes are <arn>/index/*)."
  value       = aws_dynamodb_table.alerts.arn
}
