# Hot alert store, exactly seed §3.4: on-demand, PK alert_id / SK detected_at, one GSI per API filter,
# 24 h TTL on ttl_epoch. Only key attributes are declared; ttl_epoch (N) is a plain item attribute.
resource "aws_dynamodb_table" "alerts" {
  #checkov:skip=CKV_AWS_119:Encrypted with the AWS managed key alias/aws/dynamodb by default (no monthly key charge, seed §10.2); set var.kms_key_arn at the root for a customer managed key.
  name                        = "${var.name}-alerts"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "alert_id"
  range_key                   = "detected_at"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "alert_id"
    type = "S"
  }

  attribute {
    name = "detected_at"
    type = "S"
  }

  attribute {
    name = "alert_type"
    type = "S"
  }

  attribute {
    name = "symbol"
    type = "S"
  }

  # GET /alerts?type=... newest first.
  global_secondary_index {
    name            = "type-time-index"
    hash_key        = "alert_type"
    range_key       = "detected_at"
    projection_type = "ALL"
  }

  # GET /alerts?symbol=... newest first.
  global_secondary_index {
    name            = "symbol-time-index"
    hash_key        = "symbol"
    range_key       = "detected_at"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "ttl_epoch"
    enabled        = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }
}
