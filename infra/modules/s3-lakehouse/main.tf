locals {
  # zone key -> bucket name. Keys are the contract with the root outputs and the IAM module. No region
  # in the name: the IAM role names are account-global anyway, and the longest name must fit in 63.
  zones   = ["raw", "processed", "checkpoint", "query-results"]
  buckets = { for zone in local.zones : zone => "${var.name}-${zone}-${var.account_id}" }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logging needs a separate log bucket and costs more than the data it would audit; CloudTrail data events are the opt-in audit trail.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage for derived, re-creatable market data; not part of the cost envelope (seed §10).
  #checkov:skip=CKV2_AWS_62:No consumer listens for object events; the pipeline discovers data through the Glue catalog.
  #checkov:skip=CKV_AWS_21:Only the processed bucket is versioned (aws_s3_bucket_versioning.processed); raw, checkpoint and query results are short-lived by lifecycle and versioning would keep the bytes it expires.
  #checkov:skip=CKV2_AWS_61:Each bucket has its own lifecycle configuration in lifecycle.tf (tests/infra checks all four); checkov cannot follow the per-key references into this for_each resource.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) by default as in the seed; set var.kms_key_arn at the root for SSE-KMS with a customer managed key.
  for_each = local.buckets

  bucket        = each.value
  force_destroy = var.force_destroy

  tags = {
    Zone = each.key
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: access is decided by IAM and the bucket policy only.
resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # The bucket key cuts KMS request costs when SSE-KMS is on; harmless with AES256.
    bucket_key_enabled = true
  }
}

# Iceberg data and metadata: versioned, so an accidental delete or overwrite can be undone.
resource "aws_s3_bucket_versioning" "processed" {
  bucket = aws_s3_bucket.this["processed"].id

  versioning_configuration {
    status = "Enabled"
  }
}

# TLS-only access (seed §7: in transit everything is TLS), and no TLS older than 1.2.
data "aws_iam_policy_document" "tls_only" {
  for_each = aws_s3_bucket.this

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  # A bucket policy applied before the public access block can race with it.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
