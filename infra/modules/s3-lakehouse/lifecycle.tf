# Lifecycle rules from seed §10.3 (cost safety). Every bucket also aborts stale multipart uploads,
# whose parts are billed but invisible in listings.

# Raw zone: 30 days in STANDARD, then STANDARD_IA, deleted at 90 days.
resource "aws_s3_bucket_lifecycle_configuration" "raw" {
  bucket = aws_s3_bucket.this["raw"].id

  rule {
    id     = "raw-tiering"
    status = "Enabled"

    filter {}

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# Processed zone (Iceberg): current data is kept; old versions go after a grace period.
resource "aws_s3_bucket_lifecycle_configuration" "processed" {
  bucket = aws_s3_bucket.this["processed"].id

  rule {
    id     = "processed-noncurrent"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.processed_noncurrent_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules on versions need versioning to exist first.
  depends_on = [aws_s3_bucket_versioning.processed]
}

# Streaming checkpoints: 7 days. A running query rewrites its offset, commit and state files every
# few batches; positions a week old are past the stream's retention and could not be resumed anyway.
resource "aws_s3_bucket_lifecycle_configuration" "checkpoint" {
  bucket = aws_s3_bucket.this["checkpoint"].id

  rule {
    id     = "checkpoint-expiry"
    status = "Enabled"

    filter {}

    expiration {
      days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Athena query results: 7 days.
resource "aws_s3_bucket_lifecycle_configuration" "query_results" {
  bucket = aws_s3_bucket.this["query-results"].id

  rule {
    id     = "query-results-expiry"
    status = "Enabled"

    filter {}

    expiration {
      days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}
