# Trade events from every connector (seed §2, ADR-001): on-demand, so no shard planning.
resource "aws_kinesis_stream" "trades" {
  #checkov:skip=CKV_AWS_185:Defaults to the AWS managed key alias/aws/kinesis (no monthly key charge, seed §10.2); set var.kms_key_arn at the root for a customer managed key.
  name             = "${var.name}-trades"
  retention_period = var.trades_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_id

  stream_mode_details {
    stream_mode = "ON_DEMAND"
  }
}

# Records that failed validation, with the reason, kept 48 h for investigation (seed §2).
resource "aws_kinesis_stream" "dlq" {
  #checkov:skip=CKV_AWS_185:Defaults to the AWS managed key alias/aws/kinesis (no monthly key charge, seed §10.2); set var.kms_key_arn at the root for a customer managed key.
  name             = "${var.name}-trades-dlq"
  retention_period = var.dlq_retention_hours
  shard_count      = var.dlq_shard_count
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_id

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

# On-chain events (OnchainEvent, DESIGN.md) from the chain connectors, on their own stream so the
# pipeline reads them only where a chain runs; on-demand like the trades stream. Created only when
# var.onchain_enabled (an idle on-demand stream is billed by the hour).
resource "aws_kinesis_stream" "onchain" {
  #checkov:skip=CKV_AWS_185:Defaults to the AWS managed key alias/aws/kinesis (no monthly key charge, seed §10.2); set var.kms_key_arn at the root for a customer managed key.
  count = var.onchain_enabled ? 1 : 0

  name             = "${var.name}-onchain"
  retention_period = var.onchain_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_id

  stream_mode_details {
    stream_mode = "ON_DEMAND"
  }
}

# On-chain events that failed validation, with the reason, kept like the trades' dead letters.
resource "aws_kinesis_stream" "onchain_dlq" {
  #checkov:skip=CKV_AWS_185:Defaults to the AWS managed key alias/aws/kinesis (no monthly key charge, seed §10.2); set var.kms_key_arn at the root for a customer managed key.
  count = var.onchain_enabled ? 1 : 0

  name             = "${var.name}-onchain-dlq"
  retention_period = var.dlq_retention_hours
  shard_count      = var.dlq_shard_count
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_id

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

# Alerts out (alerts_out in config/features.yaml): the pipeline's AlertPublisher puts every new alert
# here once (partition key = alert_id) for downstream consumers. Created only when var.alerts_enabled.
# Provisioned with one shard rather than on-demand: alerts are a trickle (a few per minute at most,
# far below a shard's 1,000 records/s or 1 MB/s), and one shard costs less than an idle on-demand
# stream, like the dead-letter streams.
resource "aws_kinesis_stream" "alerts" {
  #checkov:skip=CKV_AWS_185:Defaults to the AWS managed key alias/aws/kinesis (no monthly key charge, seed §10.2); set var.kms_key_arn at the root for a customer managed key.
  count = var.alerts_enabled ? 1 : 0

  name             = "${var.name}-alerts"
  retention_period = var.alerts_retention_hours
  shard_count      = var.alerts_shard_count
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_id

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}
