output "trades_stream_name" {
  description = "Name of the trades stream."
  value       = aws_kinesis_stream.trades.name
}

output "trades_stream_arn" {
  description = "ARN of the trades stream."
  value       = aws_kinesis_stream.trades.arn
}

output "dlq_stream_name" {
  description = "Name of the dead-letter stream."
  value       = aws_kinesis_stream.dlq.name
}

output "dlq_stream_arn" {
  description = "ARN of the dead-letter stream."
  value       = aws_kinesis_stream.dlq.arn
}

output "onchain_stream_name" {
  description = "Name of the on-chain events stream, or null when on-chain streams are off."
  value       = one(aws_kinesis_stream.onchain[*].name)
}

output "onchain_stream_arn" {
  description = "ARN of the on-chain events stream, or null when on-chain streams are off."
  value       = one(aws_kinesis_stream.onchain[*].arn)
}

output "onchain_dlq_stream_name" {
  description = "Name of the on-chain dead-letter stream, or null when on-chain streams are off."
  value       = one(aws_kinesis_stream.onchain_dlq[*].name)
}

output "onchain_dlq_stream_arn" {
  description = "ARN of the on-chain dead-letter stream, or null when on-chain streams are off."
  value       = one(aws_kinesis_stream.onchain_dlq[*].arn)
}

output "alerts_stream_name" {
  description = "Name of the alerts-out stream, or null when alerts out is off."
  value       = one(aws_kinesis_stream.alerts[*].name)
}

output "alerts_stream_arn" {
  description = "ARN of the alerts-out stream, or null when alerts out is off."
  value       = one(aws_kinesis_stream.alerts[*].arn)
}
