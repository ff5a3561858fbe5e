# Least-privilege permission documents, one per component, scoped to the ARNs of this deployment.

locals {
  s3_object_rw = [
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
  ]
  s3_bucket_list = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]

  glue_read = [
    "glue:BatchGetPartition",
    "glue:GetDatabase",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:GetTable",
    "glue:GetTableVersion",
    "glue:GetTableVersions",
    "glue:GetTables",
  ]
  # Iceberg commits are CreateTable / UpdateTable on the catalog (optimistic swap of the metadata pointer).
  glue_write = ["glue:CreateTable", "glue:UpdateTable"]

  glue_resources = [var.glue_catalog_arn, var.glue_database_arn, var.glue_tables_arn]

  # Where no chain runs there are no on-chain streams, and no statement names them.
  onchain = var.onchain_enabled ? ["onchain"] : []
  # Likewise the alerts-out stream: no stream, no grant.
  alerts_out = var.alerts_out_enabled ? ["alerts"] : []

  spark_buckets = [for zone in ["raw", "processed", "checkpoint"] : var.bucket_arns[zone]]
  batch_buckets = [for zone in ["raw", "processed"] : var.bucket_arns[zone]]
}

data "aws_iam_policy_document" "connectors" {
  statement {
    sid    = "PutTrades"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStreamSummary",
      "kinesis:ListShards",
      "kinesis:PutRecord",
      "kinesis:PutRecords",
    ]
    resources = [var.trades_stream_arn, var.dlq_stream_arn]
  }

  dynamic "statement" {
    for_each = local.kms_keys
    content {
      sid       = "EncryptRecords"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

# Chain connectors: the on-chain streams only, and the trades stream read-only for USD prices.
data "aws_iam_policy_document" "chains" {
  statement {
    sid    = "ReadTradesForPrices"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.trades_stream_arn]
  }

  dynamic "statement" {
    for_each = local.onchain
    content {
      sid    = "PutOnchainEvents"
      effect = "Allow"
      actions = [
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "kinesis:PutRecord",
        "kinesis:PutRecords",
      ]
      resources = [var.onchain_stream_arn, var.onchain_dlq_stream_arn]
    }
  }

  dynamic "statement" {
    for_each = local.kms_keys
    content {
      sid       = "DataKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "spark" {
  statement {
    sid    = "ReadTrades"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.trades_stream_arn]
  }

  dynamic "statement" {
    for_each = local.onchain
    content {
      sid    = "ReadOnchain"
      effect = "Allow"
      actions = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
      ]
      resources = [var.onchain_stream_arn]
    }
  }

  # On-chain events that fail validation go to their own dead-letter stream.
  dynamic "statement" {
    for_each = local.onchain
    content {
      sid       = "DeadLetterOnchain"
      effect    = "Allow"
      actions   = ["kinesis:DescribeStreamSummary", "kinesis:PutRecord", "kinesis:PutRecords"]
      resources = [var.onchain_dlq_stream_arn]
    }
  }

  # The quality step dead-letters records that fail validation, with the reason (DESIGN: data quality).
  statement {
    sid       = "DeadLetter"
    effect    = "Allow"
    actions   = ["kinesis:DescribeStreamSummary", "kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [var.dlq_stream_arn]
  }

  # Alerts out: the AlertPublisher checks the stream at start (DescribeStreamSummary) and puts every
  # new alert once (PutRecords); the only role that may write the stream.
  dynamic "statement" {
    for_each = local.alerts_out
    content {
      sid    = "PublishAlerts"
      effect = "Allow"
      actions = [
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "kinesis:PutRecord",
        "kinesis:PutRecords",
      ]
      resources = [var.alerts_stream_arn]
    }
  }

  statement {
    sid       = "ListBuckets"
    effect    = "Allow"
    actions   = local.s3_bucket_list
    resources = local.spark_buckets
  }

  statement {
    sid       = "ReadWriteObjects"
    effect    = "Allow"
    actions   = local.s3_object_rw
    resources = [for arn in local.spark_buckets : "${arn}/*"]
  }

  statement {
    sid       = "LakehouseCatalog"
    effect    = "Allow"
    actions   = concat(local.glue_read, local.glue_write)
    resources = local.glue_resources
  }

  statement {
    sid    = "WriteAlerts"
    effect = "Allow"
    # BatchGetItem: the wallet store (MOD-004) reads a wallet's latest score before replacing its place
    # on the leaderboard (items in the same table, coattail/hotstore/wallets.py).
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
    ]
    resources = [var.alerts_table_arn]
  }

  dynamic "statement" {
    for_each = local.kms_keys
    content {
      sid       = "DataKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "api" {
  statement {
    sid    = "ReadAlerts"
    effect = "Allow"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:Query",
      "dynamodb:Scan",
    ]
    resources = [var.alerts_table_arn, "${var.alerts_table_arn}/index/*"]
  }

  dynamic "statement" {
    for_each = local.kms_keys
    content {
      sid       = "DecryptAlerts"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

# Batch (seed §5): historical loader writes Parquet to the raw zone; reprocessing reads raw_trades at
# a snapshot (time travel) and writes anomalies_reprocessed, optionally swapping it in (DeleteTable);
# catalog upkeep registers raw-zone partitions.
data "aws_iam_policy_document" "batch" {
  statement {
    sid       = "ListBuckets"
    effect    = "Allow"
    actions   = local.s3_bucket_list
    resources = local.batch_buckets
  }

  statement {
    sid       = "ReadWriteObjects"
    effect    = "Allow"
    actions   = local.s3_object_rw
    resources = [for arn in local.batch_buckets : "${arn}/*"]
  }

  statement {
    sid    = "LakehouseCatalog"
    effect = "Allow"
    actions = concat(local.glue_read, local.glue_write, [
      "glue:BatchCreatePartition",
      "glue:BatchDeletePartition",
      "glue:CreatePartition",
      "glue:DeletePartition",
      "glue:DeleteTable",
      "glue:UpdatePartition",
    ])
    resources = local.glue_resources
  }

  statement {
    sid    = "WriteWalletStore"
    effect = "Allow"
    # The daily wallet steps publish scores and labels to the API's wallet store (alerts table items).
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
    ]
    resources = [var.alerts_table_arn]
  }

  dynamic "statement" {
    for_each = var.enable_alarm_publish ? [var.alarm_topic_arn] : []
    content {
      sid       = "NotifyFailures"
      effect    = "Allow"
      actions   = ["sns:Publish"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.kms_keys
    content {
      sid       = "DataKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}
