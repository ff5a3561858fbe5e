variable "name" {
  description = "Name prefix, e.g. coattail-dev; buckets are <name>-<zone>-<account>."
  type        = string
}

variable "account_id" {
  description = "AWS account id, appended to bucket names because they are global."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for SSE-KMS; null keeps SSE-S3 (AES256) as in the seed."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let terraform destroy delete non-empty buckets (sandbox convenience; keep false for shared environments)."
  type        = bool
  default     = false
}

variable "processed_noncurrent_days" {
  description = "Days an overwritten or deleted object version in the processed bucket is kept (Iceberg time travel uses snapshots, not S3 versions)."
  type        = number
  default     = 30
}
