variable "name" {
  description = "Name prefix, e.g. coattail-dev; used for the analyst role and Athena workgroup."
  type        = string
}

variable "database_name" {
  description = "Glue database of the lakehouse, e.g. coattail_dev_lakehouse."
  type        = string
}

variable "processed_bucket" {
  description = "Name of the processed bucket that holds the Iceberg warehouse."
  type        = string
}

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse inside the processed bucket."
  type        = string
  default     = "warehouse"
}

variable "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "account_id" {
  description = "AWS account id that owns the catalog."
  type        = string
}

variable "region" {
  description = "AWS region of the catalog."
  type        = string
}

variable "processed_bucket_arn" {
  description = "ARN of the processed (Iceberg) bucket; registered with Lake Formation when enabled."
  type        = string
}

variable "query_results_bucket" {
  description = "Name of the Athena query-results bucket."
  type        = string
}

variable "query_results_bucket_arn" {
  description = "ARN of the Athena query-results bucket."
  type        = string
}

variable "enable_lake_formation" {
  description = "Register the warehouse with Lake Formation (hybrid mode), grant table permissions and create the analyst role and workgroup (ADR-005). The applying principal must be a Lake Formation data lake administrator."
  type        = bool
  default     = false
}

variable "writer_role_arns" {
  description = "Roles that create and write tables (spark, batch); granted Lake Formation permissions when enabled."
  type        = map(string)
  default     = {}
}

variable "analyst_trusted_principal_arns" {
  description = "Principals that may assume the analyst role (with MFA); empty means any IAM principal of this account that is allowed to."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the buckets, or null for SSE-S3."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "Optional permissions boundary for the analyst role."
  type        = string
  default     = null
}
