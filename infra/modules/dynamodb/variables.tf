variable "name" {
  description = "Name prefix, e.g. coattail-dev; the table is <name>-alerts."
  type        = string
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery (35 days of continuous backups)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the table (turn on for shared environments)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer managed KMS key; null uses the AWS managed key alias/aws/dynamodb."
  type        = string
  default     = null
}
