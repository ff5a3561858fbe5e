output "bucket_names" {
  description = "Bucket name per zone: raw, processed, checkpoint, query-results."
  value       = { for zone, bucket in aws_s3_bucket.this : zone => bucket.id }
}

output "bucket_arns" {
  description = "Bucket ARN per zone: raw, processed, checkpoint, query-results."
  value       = { for zone, bucket in aws_s3_bucket.this : zone => bucket.arn }
}
