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
