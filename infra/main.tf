# Coat Tail Capital — AWS backing services for the eks profile. The EKS cluster is given; this
# creates what the workloads use (seed §2, §12.1) and one IRSA role per service account.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name          = "${var.prefix}-${var.environment}"
  glue_database = "${replace(local.name, "-", "_")}_lakehouse"
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition

  # Where the pipeline and batch jobs write inside the buckets; the Helm values get the same paths.
  raw_zone_path       = "s3://${module.lakehouse.bucket_names["raw"]}/raw"
  checkpoint_location = "s3://${module.lakehouse.bucket_names["checkpoint"]}/pipeline"

  # On-chain streams where chain connectors run: the medium and large tiers (config/tiers/medium.yaml
  # lists ethereum and solana; large extends it), or as var.enable_onchain_streams says.
  onchain_enabled = var.enable_onchain_streams != null ? var.enable_onchain_streams : contains(["medium", "large"], var.feature_tier)

  # SSM service discovery (seed §2): the names of what Terraform created.
  ssm_values = {
    "stream-name"           = module.streams.trades_stream_name
    "dlq-stream-name"       = module.streams.dlq_stream_name
    "alerts-table"          = module.hot_store.table_name
    "glue-database"         = module.catalog.database_name
    "feature-tier"          = var.feature_tier
    "buckets/raw"           = module.lakehouse.bucket_names["raw"]
    "buckets/processed"     = module.lakehouse.bucket_names["processed"]
    "buckets/checkpoint"    = module.lakehouse.bucket_names["checkpoint"]
    "buckets/query-results" = module.lakehouse.bucket_names["query-results"]
  }
  ssm_onchain_values = {
    "onchain-stream-name"     = module.streams.onchain_stream_name
    "onchain-dlq-stream-name" = module.streams.onchain_dlq_stream_name
  }
}

module "streams" {
  source = "./modules/kinesis"

  name                    = local.name
  trades_retention_hours  = var.trades_retention_hours
  onchain_enabled         = local.onchain_enabled
  onchain_retention_hours = var.onchain_retention_hours
  alerts_enabled          = var.alerts_out_enabled
  alerts_retention_hours  = var.alerts_out_retention_hours
  kms_key_id              = coalesce(var.kms_key_arn, "alias/aws/kinesis")
}

module "lakehouse" {
  source = "./modules/s3-lakehouse"

  name          = local.name
  account_id    = local.account_id
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy_buckets
}

module "catalog" {
  source = "./modules/glue"

  name                           = local.name
  database_name                  = local.glue_database
  partition                      = local.partition
  account_id                     = local.account_id
  region                         = var.region
  processed_bucket               = module.lakehouse.bucket_names["processed"]
  processed_bucket_arn           = module.lakehouse.bucket_arns["processed"]
  query_results_bucket           = module.lakehouse.bucket_names["query-results"]
  query_results_bucket_arn       = module.lakehouse.bucket_arns["query-results"]
  enable_lake_formation          = var.enable_lake_formation
  writer_role_arns               = { for c in ["spark", "batch"] : c => module.irsa.role_arns[c] }
  analyst_trusted_principal_arns = var.analyst_trusted_principal_arns
  kms_key_arn                    = var.kms_key_arn
  permissions_boundary_arn       = var.permissions_boundary_arn
}

module "hot_store" {
  source = "./modules/dynamodb"

  name                   = local.name
  point_in_time_recovery = var.point_in_time_recovery
  deletion_protection    = var.dynamodb_deletion_protection
  kms_key_arn            = var.kms_key_arn
}

module "monitoring" {
  source = "./modules/monitoring"
  count  = var.enable_monitoring ? 1 : 0

  name                  = local.name
  account_id            = local.account_id
  partition             = local.partition
  alarm_email           = var.alarm_email
  billing_threshold_usd = var.billing_alarm_threshold_usd
  # No var.kms_key_arn here: the topic lives in us-east-1 and SNS needs a key of its own region.
}

module "irsa" {
  source = "./modules/iam"

  name                     = local.name
  partition                = local.partition
  oidc_provider_arn        = var.oidc_provider_arn
  namespace                = var.namespace
  service_accounts         = var.service_accounts
  trades_stream_arn        = module.streams.trades_stream_arn
  dlq_stream_arn           = module.streams.dlq_stream_arn
  onchain_enabled          = local.onchain_enabled
  onchain_stream_arn       = module.streams.onchain_stream_arn
  onchain_dlq_stream_arn   = module.streams.onchain_dlq_stream_arn
  alerts_out_enabled       = var.alerts_out_enabled
  alerts_stream_arn        = module.streams.alerts_stream_arn
  bucket_arns              = module.lakehouse.bucket_arns
  glue_catalog_arn         = module.catalog.catalog_arn
  glue_database_arn        = module.catalog.database_arn
  glue_tables_arn          = module.catalog.tables_arn
  alerts_table_arn         = module.hot_store.table_arn
  kms_key_arn              = var.kms_key_arn
  enable_alarm_publish     = var.enable_monitoring
  alarm_topic_arn          = var.enable_monitoring ? module.monitoring[0].alarm_topic_arn : null
  permissions_boundary_arn = var.permissions_boundary_arn
}

module "parameters" {
  source = "./modules/ssm"

  name   = local.name
  values = merge(local.ssm_values, local.onchain_enabled ? local.ssm_onchain_values : {})
  string_lists = {
    symbols = var.symbols
  }
}
