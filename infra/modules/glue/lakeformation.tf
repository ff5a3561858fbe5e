# ADR-005: Lake Formation governs table access for people (the analyst role); services keep IAM
# access (hybrid mode), so the pipeline works whether or not Lake Formation is switched on.

locals {
  lf_count           = var.enable_lake_formation ? 1 : 0
  lf_writers         = var.enable_lake_formation ? var.writer_role_arns : {}
  analyst_principals = length(var.analyst_trusted_principal_arns) > 0 ? var.analyst_trusted_principal_arns : ["arn:${var.partition}:iam::${var.account_id}:root"]
}

resource "aws_lakeformation_resource" "warehouse" {
  count = local.lf_count

  arn                     = local.warehouse_arn
  use_service_linked_role = true
  hybrid_access_enabled   = true
}

resource "aws_lakeformation_permissions" "writer_database" {
  for_each = local.lf_writers

  principal   = each.value
  permissions = ["CREATE_TABLE", "ALTER", "DESCRIBE"]

  database {
    name = aws_glue_catalog_database.lakehouse.name
  }
}

resource "aws_lakeformation_permissions" "writer_tables" {
  for_each = local.lf_writers

  principal   = each.value
  permissions = ["SELECT", "INSERT", "DELETE", "DESCRIBE", "ALTER", "DROP"]

  table {
    database_name = aws_glue_catalog_database.lakehouse.name
    wildcard      = true
  }
}

resource "aws_lakeformation_permissions" "writer_location" {
  for_each = local.lf_writers

  principal   = each.value
  permissions = ["DATA_LOCATION_ACCESS"]

  data_location {
    arn = aws_lakeformation_resource.warehouse[0].arn
  }
}

# Analyst: read-only, MFA enforced (seed §6).
data "aws_iam_policy_document" "analyst_trust" {
  count = local.lf_count

  statement {
    sid     = "AssumeWithMfa"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = local.analyst_principals
    }

    condition {
      test     = "Bool"
      variable = "aws:MultiFactorAuthPresent"
      values   = ["true"]
    }
  }
}

resource "aws_iam_role" "analyst" {
  count = local.lf_count

  name                 = "${var.name}-analyst"
  description          = "Read-only lakehouse analyst (Athena + Lake Formation), MFA required."
  assume_role_policy   = data.aws_iam_policy_document.analyst_trust[0].json
  max_session_duration = 3600
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_athena_workgroup" "analysts" {
  count = local.lf_count

  name          = "${var.name}-analysts"
  description   = "Analyst queries over the lakehouse; results expire with the query-results bucket (7 days)."
  force_destroy = true

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true

    result_configuration {
      output_location = "s3://${var.query_results_bucket}/athena/"

      encryption_configuration {
        encryption_option = var.kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}

data "aws_iam_policy_document" "analyst" {
  count = local.lf_count

  statement {
    sid    = "AthenaQueries"
    effect = "Allow"
    actions = [
      "athena:BatchGetQueryExecution",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:GetWorkGroup",
      "athena:ListQueryExecutions",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
    ]
    resources = [aws_athena_workgroup.analysts[0].arn]
  }

  statement {
    sid    = "GlueRead"
    effect = "Allow"
    actions = [
      "glue:BatchGetPartition",
      "glue:GetDatabase",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:GetTable",
      "glue:GetTables",
    ]
    resources = [local.catalog_arn, local.database_arn, local.tables_arn]
  }

  # GetDataAccess has no resource-level permissions; Lake Formation grants decide what it returns.
  statement {
    sid       = "LakeFormationDataAccess"
    effect    = "Allow"
    actions   = ["lakeformation:GetDataAccess"]
    resources = ["*"]
  }

  statement {
    sid       = "ListBuckets"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket"]
    resources = [var.processed_bucket_arn, var.query_results_bucket_arn]
  }

  statement {
    sid       = "ReadProcessed"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.processed_bucket_arn}/*"]
  }

  statement {
    sid       = "WriteQueryResults"
    effect    = "Allow"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
    resources = ["${var.query_results_bucket_arn}/athena/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "BucketKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "analyst" {
  count = local.lf_count

  name   = "lakehouse-read"
  role   = aws_iam_role.analyst[0].id
  policy = data.aws_iam_policy_document.analyst[0].json
}

resource "aws_lakeformation_permissions" "analyst_database" {
  count = local.lf_count

  principal   = aws_iam_role.analyst[0].arn
  permissions = ["DESCRIBE"]

  database {
    name = aws_glue_catalog_database.lakehouse.name
  }
}

resource "aws_lakeformation_permissions" "analyst_tables" {
  count = local.lf_count

  principal   = aws_iam_role.analyst[0].arn
  permissions = ["SELECT", "DESCRIBE"]

  table {
    database_name = aws_glue_catalog_database.lakehouse.name
    wildcard      = true
  }
}
