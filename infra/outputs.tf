# Everything the Helm chart's eks profile needs. `coattail infra helm-values` turns
# `terraform output -json` into a values file.

output "region" {
  description = "AWS region of the backing services."
  value       = var.region
}

output "feature_tier" {
  description = "Feature tier (small | medium | large)."
  value       = var.feature_tier
}

output "namespace" {
  description = "Kubernetes namespace the IAM roles trust."
  value       = var.namespace
}

output "service_account_names" {
  description = "Kubernetes service account name per component."
  value       = var.service_accounts
}

output "service_account_role_arns" {
  description = "IAM role ARN per component, for the eks.amazonaws.com/role-arn annotation."
  value       = module.irsa.role_arns
}

output "kinesis_stream_name" {
  description = "Trades stream."
  value       = module.streams.trades_stream_name
}

output "kinesis_stream_arn" {
  description = "ARN of the trades stream."
  value       = module.streams.trades_stream_arn
}

output "kinesis_dlq_stream_name" {
  description = "Dead-letter stream."
  value       = module.streams.dlq_stream_name
}

output "kinesis_dlq_stream_arn" {
  description = "ARN of the dead-letter stream."
  value       = module.streams.dlq_stream_arn
}

output "kinesis_onchain_stream_name" {
  description = "On-chain events stream, or null when on-chain streams are off."
  value       = module.streams.onchain_stream_name
}

output "kinesis_onchain_stream_arn" {
  description = "ARN of the on-chain events stream, or null when on-chain streams are off."
  value       = module.streams.onchain_stream_arn
}

output "kinesis_onchain_dlq_stream_name" {
  description = "On-chain dead-letter stream, or null when on-chain streams are off."
  value       = module.streams.onchain_dlq_stream_name
}

output "kinesis_onchain_dlq_stream_arn" {
  description = "ARN of the on-chain dead-letter stream, or null when on-chain streams are off."
  value       = module.streams.onchain_dlq_stream_arn
}

output "kinesis_alerts_stream_name" {
  description = "Alerts-out stream (alerts_out.kinesis_stream_name), or null when alerts_out_enabled is off."
  value       = module.streams.alerts_stream_name
}

output "kinesis_alerts_stream_arn" {
  description = "ARN of the alerts-out stream, or null when alerts_out_enabled is off."
  value       = module.streams.alerts_stream_arn
}

output "alerts_table_name" {
  description = "DynamoDB alerts table."
  value       = module.hot_store.table_name
}

output "alerts_table_arn" {
  description = "ARN of the alerts table."
  value       = module.hot_store.table_arn
}

output "bucket_names" {
  description = "Bucket name per zone: raw, processed, checkpoint, query-results."
  value       = module.lakehouse.bucket_names
}

output "warehouse_path" {
  description = "Iceberg warehouse (Glue catalog)."
  value       = module.catalog.warehouse_path
}

output "raw_zone_path" {
  description = "Raw zone for the historical loader (Parquet by date and symbol)."
  value       = local.raw_zone_path
}

output "checkpoint_location" {
  description = "Spark structured streaming checkpoint root."
  value       = local.checkpoint_location
}

output "glue_database_name" {
  description = "Glue database of the lakehouse."
  value       = module.catalog.database_name
}

output "ssm_parameter_prefix" {
  description = "SSM path holding the same names for scripts and operators."
  value       = module.parameters.prefix
}

output "alarm_topic_arn" {
  description = "Alarm topic ARN (in us-east-1, with the billing alarm), or null when monitoring is off."
  value       = var.enable_monitoring ? module.monitoring[0].alarm_topic_arn : null
}

output "analyst_role_arn" {
  description = "Analyst role ARN, or null when Lake Formation is off."
  value       = module.catalog.analyst_role_arn
}

output "athena_workgroup" {
  description = "Athena workgroup for analysts, or null when Lake Formation is off."
  value       = module.catalog.athena_workgroup
}
