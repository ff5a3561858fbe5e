variable "name" {
  description = "Name prefix, e.g. coattail-dev; roles are <name>-<component>."
  type        = string
}

variable "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace the workloads run in."
  type        = string
}

variable "service_accounts" {
  description = "Kubernetes service account name per component: connectors, chains, spark, api, batch."
  type = object({
    connectors = string
    chains     = string
    spark      = string
    api        = string
    batch      = string
  })
}

variable "trades_stream_arn" {
  description = "ARN of the trades stream."
  type        = string
}

variable "dlq_stream_arn" {
  description = "ARN of the dead-letter stream."
  type        = string
}

variable "onchain_enabled" {
  description = "The on-chain streams exist: grant the chain connectors and the pipeline access to them."
  type        = bool
  default     = false
}

variable "onchain_stream_arn" {
  description = "ARN of the on-chain events stream; used when onchain_enabled is true."
  type        = string
  default     = null
}

variable "onchain_dlq_stream_arn" {
  description = "ARN of the on-chain dead-letter stream; used when onchain_enabled is true."
  type        = string
  default     = null
}

variable "alerts_out_enabled" {
  description = "The alerts-out stream exists: let the pipeline put its new alerts to it."
  type        = bool
  default     = false
}

variable "alerts_stream_arn" {
  description = "ARN of the alerts-out stream; used when alerts_out_enabled is true."
  type        = string
  default     = null
}

variable "bucket_arns" {
  description = "Bucket ARN per zone: raw, processed, checkpoint, query-results."
  type        = map(string)
}

variable "glue_catalog_arn" {
  description = "ARN of the Glue catalog."
  type        = string
}

variable "glue_database_arn" {
  description = "ARN of the lakehouse database."
  type        = string
}

variable "glue_tables_arn" {
  description = "ARN pattern of the lakehouse database's tables."
  type        = string
}

variable "alerts_table_arn" {
  description = "ARN of the alerts table."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the streams, table and buckets; null when AWS managed keys are used (their key policies already admit the account's principals through the service)."
  type        = string
  default     = null
}

variable "enable_alarm_publish" {
  description = "Allow the batch role to publish to the alarm topic (monitoring on)."
  type        = bool
  default     = false
}

variable "alarm_topic_arn" {
  description = "ARN of the alarm topic; used when enable_alarm_publish is true."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "Optional permissions boundary attached to every role."
  type        = string
  default     = null
}
